"""What validation approves, the runtime trains: tool-call turns that first appear after the first written
batch (and after the validated sample) still map, tokenize and train."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_training.plan import TrainingPlan
from tests.example_data import sharegpt, sharegpt_tools

pytestmark = pytest.mark.slow


def test_tool_calls_after_a_thousand_plain_rows_map_and_train(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path
) -> None:
    from finetune_training.data import prepare_dataset
    from finetune_training.methods import build_trainer, load_tokenizer

    plain = sharegpt()
    # Over datasets' 1,000-row writer batch of plain turns first, then turns with other keys.
    rows = [plain[i % len(plain)] for i in range(1100)] + sharegpt_tools()
    path = tmp_path / "late_tools.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = make_plan("SFT", str(path), "ShareGPT", hyperparameters={"maxLength": 512})
    dataset = prepare_dataset(plan.dataset, plan.method, plan.rewards)
    assert len(dataset) == len(rows)
    last = dataset[len(rows) - 1]["messages"]
    assert any(turn.get("tool_calls") for turn in last), "the tool call survived mapping"
    trainer = build_trainer(
        plan, dataset.select(range(1090, len(rows))), tmp_path / "c", [], load_tokenizer(plan)
    )
    assert len(trainer.train_dataset) > 0
