"""Two processes, really: `ftjob train` on a plan with two GPUs starts PyTorch's launcher (torchrun), which on
this CPU machine brings up a gloo group of two workers through the same launch path a multi-GPU pod uses.
Rank 0 alone reports; the step's batch spans both processes; a launcher that started fewer fails loudly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_training.events import EventKind
from finetune_training.plan import TrainingPlan
from tests.integration.training_support import events_of, run_subprocess

pytestmark = pytest.mark.slow


def test_two_processes_train_as_one_run(make_plan: Callable[..., TrainingPlan], tmp_path: Path) -> None:
    plan = make_plan("SFT", "text.jsonl", resources={"gpuCount": 2})
    proc = run_subprocess(plan, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = events_of(proc.stdout)
    kinds = [e.ftjob for e in events]
    assert kinds.count(EventKind.START) == 1 and kinds.count(EventKind.DONE) == 1, "rank 0 alone reports"
    start = next(e for e in events if e.ftjob == EventKind.START)
    hp = plan.hyperparameters
    assert start.rows is not None
    assert start.rows.examples_per_step == hp.per_device_batch_size * hp.gradient_accumulation_steps * 2
    assert (Path(plan.output.local_dir) / "final" / "adapter_model.safetensors").is_file()
