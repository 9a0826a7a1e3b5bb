"""KTO with real TRL on CPU, on unpaired feedback (prompt/completion/label), with and without LoRA."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_training.events import EventKind
from finetune_training.plan import TrainingPlan
from tests.integration.training_support import run_in_process

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("peft", ["LoRA", "None"])
def test_kto_on_unpaired_feedback(
    peft: str, make_plan: Callable[..., TrainingPlan], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # KTO's KL estimate pairs each completion with another row's prompt: a batch needs more than one row.
    plan = make_plan("KTO", "unpaired_preference.jsonl", peft=peft, hyperparameters={"perDeviceBatchSize": 4})
    code, events = run_in_process(plan, tmp_path, capsys)
    assert code == 0, events
    progress = [e for e in events if e.ftjob == EventKind.PROGRESS]
    assert [e.step for e in progress] == [1, 2]
    assert all(e.loss is not None and math.isfinite(e.loss) for e in progress)
    final = Path(plan.output.local_dir) / "final"
    weights = "adapter_model.safetensors" if peft == "LoRA" else "model.safetensors"
    assert (final / weights).is_file()
    card = (final / "README.md").read_text()
    assert "- kto" in card and "Kahneman-Tversky Optimization (KTO)" in card
