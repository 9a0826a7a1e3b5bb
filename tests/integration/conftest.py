"""Fixtures for integration tests: the tiny model (built once per session), plan/run helpers, and a Hub
stand-in per module."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from finetune_training.plan import TrainingPlan
from tests.example_data import DATASETS
from tests.hub import HubServer, client_config, start_hub


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Llama-shaped model (hidden 256, 2 layers) with a ChatML byte-level BPE tokenizer, no downloads."""
    from finetune_training.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny")


@pytest.fixture
def make_plan(tiny_model: Path, tmp_path: Path) -> Callable[..., TrainingPlan]:
    """Build a small plan: a few steps, batch 2, max length 128, on one of the project's example datasets."""

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


@pytest.fixture(scope="session", autouse=True)
def trackio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """trackio's local store for the session (trackio reads `TRACKIO_DIR` once, at import)."""
    path = tmp_path_factory.mktemp("trackio")
    os.environ["TRACKIO_DIR"] = str(path)
    return path


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A Hub + Jobs stand-in for the module; the client talks to it anonymously (each call passes the token
    it means to use, as the operator does). Modules that need other contents define their own `hub`."""
    server = start_hub(tmp_path_factory.mktemp("hub"))
    with client_config(server, token=None):
        yield server
    server.stop()
