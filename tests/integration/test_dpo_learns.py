"""DPO learns a preference that holds on pairs it never trained on: held-out reward accuracy well above
chance (seeded; a run that learned nothing stays at or below 0.5)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_training.events import EventKind
from finetune_training.plan import TrainingPlan
from tests.integration.training_support import run_in_process

pytestmark = pytest.mark.slow

TOPICS = ["a poem", "a recipe", "a summary", "a haiku", "a list", "a plan", "an email", "a joke"]
WHO = ["my team", "a friend", "my boss", "the class", "a neighbour", "my sister", "the club", "a client"]


def test_dpo_reward_accuracy_on_held_out_pairs(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {
            "prompt": f"Write {topic} for {who}.",
            "chosen": "Gladly, here it is.",
            "rejected": "No. Do it yourself.",
        }
        for topic in TOPICS
        for who in WHO
    ]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = make_plan(
        "DPO", str(data), peft="None",
        hyperparameters={"maxSteps": 20, "learningRate": 1e-3, "perDeviceBatchSize": 8, "maxLength": 64,
                         "warmupRatio": 0.0},
        evaluation={"fraction": 0.25},
    )  # fmt: skip
    code, events = run_in_process(plan, tmp_path, capsys)
    assert code == 0, events
    evaluations = [e for e in events if e.ftjob == EventKind.EVALUATION]
    base, final = evaluations[0].metrics or {}, evaluations[-1].metrics or {}
    assert evaluations[0].baseline and base["eval_rewards/accuracies"] <= 0.5
    assert final["eval_rewards/accuracies"] >= 0.9, final
