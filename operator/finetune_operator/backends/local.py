"""The Local backend: `ftjob train` as a process on the operator's host (a GPU box, or the CPU demo).

Each job gets a folder `<workdir>/<namespace>/<work name>/` holding `plan.json`, `train.log`, `pid` (the
shell that records the exit code), `run_pid` (the run's process group) and, once the process ends,
`exit_code`. The folder is the backend identity: a restarted operator finds it.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from finetune_operator.backends.base import (
    TERMINAL_STATES,
    JobTarget,
    LogCursor,
    WorkRef,
    WorkState,
    WorkStatus,
)
from finetune_operator.cluster.identity import work_name
from finetune_operator.config import OperatorConfig
from finetune_operator.errors import SpecError
from finetune_training.events import KEY_ENV as EVENTS_KEY_ENV
from finetune_training.plan import TrainingPlan

if TYPE_CHECKING:
    from finetune_operator.cluster.watched import WatchedWork

STOP_GRACE_SECONDS = 60.0
"""How long a stopped run may take to save and push its checkpoint (after SIGTERM) before SIGKILL."""
TIMEOUT_EXIT = 124  # coreutils `timeout`
PASSED_ENV = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH", "HF_HOME")
"""The only operator variables a run inherits: no ServiceAccount or Kubernetes settings, no operator
secrets (the run may execute user code)."""
PASSED_PREFIXES = ("HF_HUB_", "HF_XET_", "HF_DATASETS_")
"""Hub and datasets client settings (offline mode, Xet, timeouts) pass too; credentials never do."""


def run_env(config: OperatorConfig, target: JobTarget, folder: Path) -> dict[str, str]:
    """The run's whole environment: what it needs, its own token and event key, nothing else."""
    env = {k: v for k, v in os.environ.items() if k in PASSED_ENV or k.startswith(PASSED_PREFIXES)}
    env.update(TRACKIO_DIR=str(folder / "trackio"), PYTHONUNBUFFERED="1", HF_HUB_DISABLE_TELEMETRY="1")
    if config.hf_endpoint:
        env["HF_ENDPOINT"] = config.hf_endpoint
    if target.token:
        env["HF_TOKEN"] = target.token
    if target.events_key:
        env[EVENTS_KEY_ENV] = target.events_key
    return env


class LocalBackend:
    """Runs training as a child process group of the operator, logging to a file."""

    kind = "Process"
    needs_token = False  # the process is the operator's own child: cancel and logs need no token
    retries_itself = False
    collected_with_job = False  # the operator's own child process: deleting the job must stop it
    watched = False  # its work is not in the cluster: no watch pushes its changes

    def __init__(
        self,
        config: OperatorConfig,
        command: list[str] | None = None,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
    ) -> None:
        self.workdir = Path(config.local_workdir)
        self.config = config
        self.command = command or [sys.executable, "-m", "finetune_operator.cli.main", "train"]
        self.stop_grace_seconds = stop_grace_seconds
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def folder(self, target: JobTarget) -> Path:
        """Where this job's files live."""
        return self.workdir / target.namespace / work_name(target.name, target.uid, target.attempt)

    def find(self, target: JobTarget) -> WorkRef | None:
        """The job's folder, when a process was started for it."""
        folder = self.folder(target)
        if not (folder / "pid").exists():
            return None
        return self._ref(folder, target.attempt)

    def _ref(self, folder: Path, attempt: int) -> WorkRef:
        return WorkRef(kind=self.kind, id=folder.name, url=(folder / "train.log").as_uri(), attempt=attempt)

    def submit(self, target: JobTarget, plan: TrainingPlan, timeout_seconds: int) -> WorkRef:
        """Start `ftjob train --plan plan.json` in a new session, with a wall-clock limit."""
        folder = self.folder(target)
        folder.mkdir(parents=True, exist_ok=True)
        plan = plan.model_copy(
            update={"output": plan.output.model_copy(update={"local_dir": str(folder / "outputs")})}
        )
        plan.dump(folder / "plan.json")
        (folder / "run_pid").unlink(missing_ok=True)
        train = shlex.join([*self.command, "--plan", str(folder / "plan.json")])
        # The shell records the exit code, so a restarted operator can read how the run ended. `timeout`
        # leads a process group of its own (the run and its children): a cancel signals that group, so the
        # shell lives on to record the code. At the limit, or on a cancel, `timeout` sends SIGTERM (the run
        # saves a checkpoint) and SIGKILL after the grace.
        grace = int(self.stop_grace_seconds)
        script = f"timeout --signal=TERM --kill-after={grace} {timeout_seconds} {train} & "
        script += "echo $! > run_pid; wait $!; echo $? > exit_code.tmp && mv exit_code.tmp exit_code"
        if not self.config.local_allow_code_rewards and any(r.code for r in plan.rewards or []):
            raise SpecError(
                "CodeRewardsDisabled",
                "this operator does not run inline reward `code` on its own host (Local backend): use a "
                "built-in reward or `function`, another backend, or ask the operator's admin to set "
                "`localAllowCodeRewards`",
            )
        env = run_env(self.config, target, folder)
        with open(folder / "train.log", "ab") as log:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", script],
                cwd=folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        (folder / "pid").write_text(str(proc.pid))
        self._children[str(folder)] = proc
        return self._ref(folder, target.attempt)

    def _folder(self, target: JobTarget, ref: WorkRef) -> Path:
        return self.workdir / target.namespace / ref.id

    def _alive(self, folder: Path) -> bool:
        child = self._children.get(str(folder))
        if child is not None:
            return child.poll() is None
        try:
            pid = int((folder / "pid").read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        return True

    def poll(self, target: JobTarget, ref: WorkRef) -> WorkStatus:
        """Running while the process lives; the exit code says how it ended. The times are those of the
        files the run writes when it starts (`pid`) and ends (`exit_code`)."""
        folder = self._folder(target, ref)
        status = self._poll(folder)
        status.started_at = _mtime(folder / "pid")
        status.ended_at = _mtime(folder / "exit_code") if status.state in TERMINAL_STATES else None
        return status

    def _poll(self, folder: Path) -> WorkStatus:
        exit_file = folder / "exit_code"
        if exit_file.exists():
            code = int(exit_file.read_text().strip() or 1)
            self._children.pop(str(folder), None)
            if code == 0:
                return WorkStatus(state=WorkState.SUCCEEDED, reason="ProcessExited", message="exit code 0")
            if code == TIMEOUT_EXIT:
                return WorkStatus(
                    state=WorkState.FAILED, reason="Timeout", message="stopped at the time limit"
                )
            if (folder / "cancelled").exists():
                return WorkStatus(state=WorkState.CANCELLED, reason="Cancelled", message="process killed")
            return WorkStatus(state=WorkState.FAILED, reason="ProcessFailed", message=f"exit code {code}")
        if self._alive(folder):
            return WorkStatus(state=WorkState.RUNNING, reason="ProcessRunning")
        if (folder / "cancelled").exists():
            return WorkStatus(state=WorkState.CANCELLED, reason="Cancelled", message="process killed")
        if not folder.exists():
            return WorkStatus(state=WorkState.FAILED, reason="BackendWorkLost", message=f"{folder} is gone")
        return WorkStatus(
            state=WorkState.FAILED,
            reason="BackendWorkLost",
            message="the training process ended without an exit code (host restarted or process killed)",
        )

    def logs(
        self,
        target: JobTarget,
        ref: WorkRef,
        *,
        follow: bool = False,
        tail: int | None = None,
        cursor: LogCursor | None = None,
    ) -> Iterator[str]:
        """Lines of `train.log`; with follow, keeps reading until the process ends; with `cursor`, from its
        byte offset on."""
        path = self._log_file(target, ref)
        folder = path.parent
        if not path.exists():
            return
        if cursor is not None and not follow:
            yield from _lines_after(path, cursor, ended=(folder / "exit_code").exists())
            return
        with open(path, errors="replace") as fh:
            if tail is not None:
                yield from (line.rstrip("\n") for line in collections.deque(fh, maxlen=tail))
            while True:
                line = fh.readline()
                if line:
                    yield line.rstrip("\n")
                    continue
                if not follow or (folder / "exit_code").exists():
                    return
                time.sleep(0.5)

    def _log_file(self, target: JobTarget, ref: WorkRef) -> Path:
        """The run's `train.log`: where its `file://` URL says (the same file as in its folder, and what
        `ftjob logs` reads on this host without the operator's `localWorkdir`), else in its folder."""
        url = urlparse(ref.url or "")
        if url.scheme == "file":
            return Path(unquote(url.path))
        return self._folder(target, ref) / "train.log"

    def _run_group(self, folder: Path) -> int | None:
        """The run's process group (`timeout`'s pid), once the shell has written it."""
        deadline = time.monotonic() + 5.0
        while self._alive(folder):
            try:
                return int((folder / "run_pid").read_text())
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.1)
        return None

    def watch_from(self, seen: WatchedWork) -> None:
        """Nothing to read from the cluster's watches: its work runs outside the cluster."""

    def link(self, ref: WorkRef) -> str | None:
        """None: its `file://` URL names a file on the operator's host, no page anyone can open."""
        return None

    def cancel(self, target: JobTarget, ref: WorkRef) -> None:
        """Stop the run: SIGTERM to its process group (it saves and pushes a checkpoint, then exits 143),
        SIGKILL to it and the shell after `stop_grace_seconds` if it still runs."""
        folder = self._folder(target, ref)
        if not (folder / "pid").exists() or (folder / "exit_code").exists():
            return
        (folder / "cancelled").touch()
        shell = int((folder / "pid").read_text())
        run = self._run_group(folder)
        for sig, groups, wait in (
            (signal.SIGTERM, [run or shell], self.stop_grace_seconds),
            (signal.SIGKILL, [g for g in (run, shell) if g], 10.0),
        ):
            for group in groups:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self._alive(folder):
                time.sleep(0.2)
            if not self._alive(folder):
                return


def _lines_after(path: Path, cursor: LogCursor, *, ended: bool) -> Iterator[str]:
    """The whole lines of `path` after `cursor.offset`, advancing it; a last line without its newline counts
    only once the run has ended (until then the run may still be writing it)."""
    with open(path, "rb") as fh:
        fh.seek(cursor.offset)
        for raw in fh:
            if not raw.endswith(b"\n") and not ended:
                return
            cursor.offset += len(raw)
            yield raw.decode(errors="replace").rstrip("\r\n")


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None
