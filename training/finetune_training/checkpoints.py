"""Checkpoints on the Hub: pushed to a `checkpoints` branch as training goes, downloaded to resume.

The branch holds one folder, `last-checkpoint/`, with the Trainer's checkpoint files and a marker
(`ftjob-checkpoint.json`) naming the FineTuneJob UID, so a different job writing to the same repo never
resumes from a stranger's state.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from finetune_training.events import EventKind, RuntimeEvent, emit
from finetune_training.hubrepo import ensure_repo

BRANCH = "checkpoints"
FOLDER = "last-checkpoint"
MARKER = "ftjob-checkpoint.json"

log = logging.getLogger(__name__)


def checkpoint_step(path: Path) -> int:
    """The global step a Trainer checkpoint folder was saved at (from `trainer_state.json`)."""
    state = path / "trainer_state.json"
    if state.is_file():
        return int(json.loads(state.read_text()).get("global_step", 0))
    return int(path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-") or 0)


def local_checkpoint(output_dir: Path) -> Path | None:
    """The newest `checkpoint-N` folder in `output_dir`, if any (a restarted pod with the same disk)."""
    if not output_dir.is_dir():
        return None
    last = get_last_checkpoint(str(output_dir))
    return Path(last) if last else None


class HubCheckpoints:
    """The `checkpoints` branch of the output repo.

    Parameters
    ----------
    api
        A client (token from `HF_TOKEN`, endpoint from `HF_ENDPOINT`).
    repo
        The output repo id.
    job_uid
        The FineTuneJob UID written into, and required of, the marker.
    private
        Visibility when the repo has to be created.
    """

    def __init__(self, api: HfApi, repo: str, job_uid: str, private: bool = True) -> None:
        self.api = api
        self.repo = repo
        self.job_uid = job_uid
        self.private = private
        self._branch_ready = False

    @property
    def url(self) -> str:
        """Where the last checkpoint is browsable."""
        return f"{constants.ENDPOINT}/{self.repo}/tree/{BRANCH}/{FOLDER}"

    def remote_step(self) -> int | None:
        """The step of this job's checkpoint on the branch, or None when there is none."""
        try:
            # Asked first: on a missing repo the download could answer from a stale local cache.
            branches = {b.name for b in self.api.list_repo_refs(self.repo).branches}
            if BRANCH not in branches:
                return None
            path = self.api.hf_hub_download(self.repo, f"{FOLDER}/{MARKER}", revision=BRANCH)
        except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
            return None
        marker = json.loads(Path(path).read_text())
        if marker.get("jobUid", "") != self.job_uid:
            log.warning("checkpoint on %s@%s belongs to another job; starting fresh", self.repo, BRANCH)
            return None
        return int(marker["step"])

    def download(self, dest: Path) -> Path:
        """Download the last checkpoint into `dest` and return its folder."""
        self.api.snapshot_download(
            self.repo, revision=BRANCH, allow_patterns=[f"{FOLDER}/*"], local_dir=str(dest)
        )
        return dest / FOLDER

    def ensure_branch(self) -> None:
        """Create the repo and the `checkpoints` branch when missing."""
        if self._branch_ready:
            return
        ensure_repo(self.api, self.repo, self.private)
        self.api.create_branch(self.repo, branch=BRANCH, exist_ok=True)
        self._branch_ready = True

    def push(self, folder: Path, step: int) -> str:
        """Upload a checkpoint folder as `last-checkpoint/` with its marker; returns the URL."""
        self.ensure_branch()
        (folder / MARKER).write_text(json.dumps({"jobUid": self.job_uid, "step": step}))
        self.api.upload_folder(
            repo_id=self.repo,
            folder_path=str(folder),
            path_in_repo=FOLDER,
            revision=BRANCH,
            commit_message=f"Checkpoint at step {step}",
        )
        return self.url


def resume_checkpoint(output_dir: Path, hub: HubCheckpoints | None) -> tuple[Path | None, int | None]:
    """The checkpoint to resume from: the newer of the local one and this job's one on the Hub.

    Returns
    -------
    tuple
        The checkpoint folder and its step, or (None, None) to start at step 0.
    """
    local = local_checkpoint(output_dir)
    local_step = checkpoint_step(local) if local else None
    remote_step = hub.remote_step() if hub else None
    if hub and remote_step is not None and (local_step is None or remote_step > local_step):
        folder = hub.download(output_dir / "hub-resume")
        return folder, remote_step
    return local, local_step


class CheckpointPushCallback(TrainerCallback):
    """After each save, push the checkpoint (main process only) and emit a `checkpoint` event."""

    def __init__(self, hub: HubCheckpoints | None) -> None:
        self.hub = hub

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Push `checkpoint-<step>` synchronously, so a kill after the event still finds it on the Hub."""
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir or ".") / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if not folder.is_dir():
            return
        url = self.hub.push(folder, state.global_step) if self.hub else folder.resolve().as_uri()
        emit(RuntimeEvent(ftjob=EventKind.CHECKPOINT, step=state.global_step, url=url))
