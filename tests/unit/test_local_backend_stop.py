"""The Local backend's cancel: SIGTERM reaches the run (not only the shell around it), SIGKILL after the grace.

Real processes stand in for `ftjob train`: a Python script that, like the runtime, handles SIGTERM by
finishing up and exiting 143.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from finetune_operator.backends.base import JobTarget, WorkState
from finetune_operator.backends.local import LocalBackend
from finetune_operator.config import OperatorConfig
from finetune_training.plan import TrainingPlan

# Records its pid, then on SIGTERM takes a moment (the checkpoint push) and exits 143.
GRACEFUL = """
import os, signal, sys, time
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
open("run.pid", "w").write(str(os.getpid()))
print("ready", flush=True)
while not stop:
    time.sleep(0.05)
time.sleep(1)
print("saved", len(stop), flush=True)
sys.exit(143)
"""
# Ignores SIGTERM: only SIGKILL ends it.
STUBBORN = """
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open("run.pid", "w").write(str(os.getpid()))
print("ready", flush=True)
time.sleep(600)
"""

TARGET = JobTarget(namespace="ns", name="stop-me", uid="0000-1111")


def _plan() -> TrainingPlan:
    return TrainingPlan.model_validate(
        {
            "job": {"name": "stop-me", "uid": TARGET.uid},
            "model": "tester/tiny",
            "dataset": {"name": "tester/data"},
            "method": "SFT",
            "peft": "LoRA",
            "output": {"localDir": "unused"},
            "tracking": {"project": "p", "runName": "r"},
        }
    )


def _started(script: str, tmp_path: Path, grace: float) -> tuple[LocalBackend, Path]:
    backend = LocalBackend(
        OperatorConfig(local_workdir=tmp_path),
        command=[sys.executable, "-c", script],
        stop_grace_seconds=grace,
    )
    ref = backend.submit(TARGET, _plan(), timeout_seconds=300)
    folder = backend.folder(TARGET)
    deadline = time.monotonic() + 60
    while "ready" not in (folder / "train.log").read_text():
        assert time.monotonic() < deadline, (folder / "train.log").read_text()
        time.sleep(0.1)
    assert ref.id == folder.name
    return backend, folder


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_cancel_lets_the_run_save_and_records_its_stop_code(tmp_path: Path) -> None:
    backend, folder = _started(GRACEFUL, tmp_path, grace=30)
    run_pid = int((folder / "run.pid").read_text())
    ref = backend.find(TARGET)
    assert ref is not None
    started = time.monotonic()
    backend.cancel(TARGET, ref)
    assert time.monotonic() - started < 20  # it ended on its own, well inside the grace
    assert "saved" in (folder / "train.log").read_text()
    assert (folder / "exit_code").read_text().strip() == "143"
    assert backend.poll(TARGET, ref).state == WorkState.CANCELLED
    assert _gone(run_pid)


def test_cancel_kills_a_run_that_ignores_sigterm_after_the_grace(tmp_path: Path) -> None:
    backend, folder = _started(STUBBORN, tmp_path, grace=1)
    run_pid = int((folder / "run.pid").read_text())
    ref = backend.find(TARGET)
    assert ref is not None
    backend.cancel(TARGET, ref)
    deadline = time.monotonic() + 10
    while not _gone(run_pid):
        assert time.monotonic() < deadline, "the run outlived its cancel"
        time.sleep(0.1)
    assert backend.poll(TARGET, ref).state == WorkState.CANCELLED
