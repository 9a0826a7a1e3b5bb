"""DPO with real TRL on CPU on ShareGPT preference data, with and without LoRA."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_training.events import EventKind
from finetune_training.plan import TrainingPlan
from tests.integration.training_support import operator_progress, run_in_process

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("peft", ["LoRA", "None"])
def test_dpo_on_sharegpt_preferences(
    peft: str, make_plan: Callable[..., TrainingPlan], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = make_plan("DPO", "sharegpt_preference.json", "ShareGPTPreference", peft=peft)
    code, events = run_in_process(plan, tmp_path, capsys)
    assert code == 0, events
    progress = [e for e in events if e.ftjob == EventKind.PROGRESS]
    assert [e.step for e in progress] == [1, 2]
    assert all(e.loss is not None and math.isfinite(e.loss) for e in progress)
    assert progress[0].metrics and "rewards/margins" in progress[0].metrics
    status = operator_progress(events)
    assert status.reward_accuracy is not None and 0 <= status.reward_accuracy <= 1
    assert status.reward_margin is not None and status.first_loss == round(progress[0].loss or 0, 6)
    assert status.first_loss == pytest.approx(math.log(2), abs=0.01)  # DPO starts at ln 2
    final = Path(plan.output.local_dir) / "final"
    weights = "adapter_model.safetensors" if peft == "LoRA" else "model.safetensors"
    assert (final / weights).is_file()
    assert "- dpo" in (final / "README.md").read_text()
