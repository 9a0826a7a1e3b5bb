"""Fixtures for training-runtime tests: the tiny model (built once per session) and plan/run helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from finetune_training.events import RuntimeEvent, parse_line
from finetune_training.plan import TrainingPlan

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Llama-shaped model (hidden 256, 2 layers) with a ChatML byte-level BPE tokenizer, no downloads."""
    from finetune_training.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny")


@pytest.fixture
def make_plan(tiny_model: Path, tmp_path: Path) -> Callable[..., TrainingPlan]:
    """Build a small plan: a few steps, batch 2, max length 128, on a file from ../shared/datasets."""

    def make(
        method: str,
        dataset: str,
        conversion: str | None = None,
        peft: str = "LoRA",
        hyperparameters: dict[str, Any] | None = None,
        output: dict[str, Any] | None = None,
        **extra: Any,
    ) -> TrainingPlan:
        hp = {
            "maxSteps": 2,
            "maxLength": 128,
            "perDeviceBatchSize": 2,
            "gradientAccumulationSteps": 1,
            "loggingSteps": 1,
            "saveSteps": 100,
            "gradientCheckpointing": False,
            **(hyperparameters or {}),
        }
        data: dict[str, Any] = {"name": str(DATASETS / dataset)}
        if conversion:
            data["conversion"] = conversion
        return TrainingPlan.model_validate(
            {
                "job": {"name": f"t-{method.lower()}", "uid": f"uid-{tmp_path.name}"},
                "model": str(tiny_model),
                "dataset": data,
                "method": method,
                "peft": peft,
                "hyperparameters": hp,
                "output": {"localDir": str(tmp_path / "out"), **(output or {})},
                "tracking": {"project": "ftjob-tests", "runName": f"{method.lower()}-{tmp_path.name}"},
                **extra,
            }
        )

    return make


@pytest.fixture(autouse=True)
def _trackio_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """trackio writes its local store under the test's folder."""
    path = tmp_path / "trackio"
    monkeypatch.setenv("TRACKIO_DIR", str(path))
    return path


def events_of(text: str) -> list[RuntimeEvent]:
    """The runtime events among the lines of a log."""
    return [e for e in (parse_line(line) for line in text.splitlines()) if e is not None]


def run_in_process(plan: TrainingPlan, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[RuntimeEvent]]:
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
        train_command(path), capture_output=True, text=True, env=subprocess_env(**env), timeout=600, cwd=tmp_path
    )
