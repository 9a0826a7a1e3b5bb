"""Helpers for training-runtime tests: run a plan in this process or as `ftjob train`, read its events."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finetune_operator.api.status import Progress
from finetune_operator.lifecycle.tracker import ProgressTracker
from finetune_training.events import RuntimeEvent, emit, parse_line
from finetune_training.plan import TrainingPlan


def events_of(text: str) -> list[RuntimeEvent]:
    """The runtime events among the lines of a log."""
    return [e for e in (parse_line(line) for line in text.splitlines()) if e is not None]


def operator_progress(events: list[RuntimeEvent]) -> Progress:
    """`status.progress` as the operator's parser makes it from the runtime's lines."""
    tracker = ProgressTracker()
    out = io.StringIO()
    for event in events:
        emit(event, out)
    tracker.feed(out.getvalue())
    return tracker.progress


def run_in_process(
    plan: TrainingPlan, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[RuntimeEvent]]:
    """Run a plan with `finetune_training.runner.run` in this process; returns exit code and events."""
    from finetune_training.runner import run

    path = tmp_path / "plan.json"
    plan.dump(path)
    capsys.readouterr()
    code = run(str(path))
    return code, events_of(capsys.readouterr().out)


def train_command(plan_path: Path) -> list[str]:
    """`ftjob train --plan PATH` with this interpreter."""
    return [sys.executable, "-m", "finetune_operator.cli.main", "train", "--plan", str(plan_path)]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a training subprocess (offline unless the caller points it at the stand-in)."""
    env = dict(os.environ)
    env.update(extra)
    return env


def run_subprocess(plan: TrainingPlan, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `ftjob train` in a subprocess to completion."""
    path = tmp_path / "plan.json"
    plan.dump(path)
    return subprocess.run(
        train_command(path),
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        timeout=600,
        cwd=tmp_path,
    )
