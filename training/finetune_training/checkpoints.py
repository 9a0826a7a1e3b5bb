"""Checkpoints on the Hub: pushed to a `checkpoints` branch as training goes, downloaded to resume.

The branch holds one folder, `last-checkpoint/`, with the Trainer's checkpoint files and a marker
(`ftjob-checkpoint.json`) naming the FineTuneJob UID, so a different job writing to the same repo never
resumes from a stranger's state.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, constants
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from finetune_training.errors import TrainingError
from finetune_training.events import EventKind, RuntimeEvent, emit
from finetune_training.hubrepo import HubUnreadable, ensure_repo, read_with_retries
from finetune_training.stop import StopRequest

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


@dataclass(frozen=True)
class RemoteCheckpoint:
    """This job's checkpoint on the branch: its step and the commit that holds it."""

    step: int
    commit: str


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

    def find(self) -> RemoteCheckpoint | None:
        """One look for this job's checkpoint: None when the repo, the branch or the marker is absent.

        The marker is read at the branch's commit, so a cached copy can only ever be of that commit and the
        download that follows gets the same checkpoint even if a push lands in between. Hub errors other
        than "absent" propagate (see :func:`finetune_training.hubrepo.read_failure`).
        """
        # Asked first: on a missing repo the download could answer from a stale local cache.
        commit = next(
            (b.target_commit for b in self.api.list_repo_refs(self.repo).branches if b.name == BRANCH), None
        )
        if commit is None:
            return None
        path = self.api.hf_hub_download(self.repo, f"{FOLDER}/{MARKER}", revision=commit)
        marker = json.loads(Path(path).read_text())
        if marker.get("jobUid", "") != self.job_uid:
            log.warning("checkpoint on %s@%s belongs to another job; starting fresh", self.repo, BRANCH)
            return None
        return RemoteCheckpoint(step=int(marker["step"]), commit=commit)

    def download(self, checkpoint: RemoteCheckpoint, dest: Path) -> Path:
        """Download `checkpoint` into a fresh `dest` and return its folder.

        `dest` is emptied first: on a failed request `snapshot_download` would otherwise answer with whatever
        an earlier attempt left there.
        """
        shutil.rmtree(dest, ignore_errors=True)
        self.api.snapshot_download(
            self.repo, revision=checkpoint.commit, allow_patterns=[f"{FOLDER}/*"], local_dir=str(dest)
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

    A Hub that cannot be read now is asked again with backoff; when it still cannot be read the run fails
    (`CheckpointUnreadable`) rather than starting at step 0 and later overwriting the checkpoint. Only the
    Hub saying the repo, branch or marker does not exist means there is none.

    Returns
    -------
    tuple
        The checkpoint folder and its step, or (None, None) to start at step 0.

    Raises
    ------
    TrainingError
        `CheckpointUnreadable` when the Hub kept failing.
    """
    local = local_checkpoint(output_dir)
    local_step = checkpoint_step(local) if local else None
    if hub is None:
        return local, local_step
    try:
        remote = read_with_retries(f"the checkpoint of {hub.repo}@{BRANCH}", hub.find)
        if remote is None or (local_step is not None and remote.step <= local_step):
            return local, local_step
        dest = output_dir / "hub-resume"
        folder = read_with_retries(
            f"the checkpoint at step {remote.step}", partial(hub.download, remote, dest)
        )
    except HubUnreadable as exc:
        raise TrainingError(
            "CheckpointUnreadable",
            f"{exc}; not starting over, so the checkpoint is not overwritten: run the job again when the Hub "
            "answers (or check that the token can read `spec.output.repo`)",
        ) from exc
    if folder is None:
        raise TrainingError(
            "CheckpointUnreadable",
            f"the checkpoint at step {remote.step} vanished from {hub.repo} while downloading",
        )
    return folder, remote.step


class CheckpointPushCallback(TrainerCallback):
    """After each save, push the checkpoint (main process only) and emit a `checkpoint` event."""

    def __init__(self, hub: HubCheckpoints | None) -> None:
        self.hub = hub
        self.last_url: str | None = None
        """Where the last checkpoint went (the Hub branch, or the local folder)."""

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
        self.last_url = url
        emit(RuntimeEvent(ftjob=EventKind.CHECKPOINT, step=state.global_step, url=url))


class StopOnSignalCallback(TrainerCallback):
    """At the end of a step after SIGTERM: log it, save (and so push) a checkpoint, and end training."""

    def __init__(self, stop: StopRequest) -> None:
        self.stop = stop

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Turn a stop request into the Trainer's own save (pushed by `CheckpointPushCallback`) and stop."""
        if self.stop.agreed(args.device):
            control.should_log = True
            control.should_save = True
            control.should_training_stop = True
