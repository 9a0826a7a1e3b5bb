"""GRPO with real TRL on CPU: GSM8K with the default accuracy reward, and user rewards."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_training.events import EventKind
from finetune_training.plan import TrainingPlan
from tests.integration.training_support import operator_progress, run_in_process

pytestmark = pytest.mark.slow

GRPO_HP = {"perDeviceBatchSize": 2, "numGenerations": 2, "maxCompletionLength": 8}


def test_grpo_on_gsm8k_with_the_default_accuracy_reward(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = make_plan("GRPO", "question_answer.jsonl", "QuestionAnswer", hyperparameters=GRPO_HP)
    assert plan.rewards == []  # as a well-known template leaves it: the runtime must supply one
    code, events = run_in_process(plan, tmp_path, capsys)
    assert code == 0, events
    progress = [e for e in events if e.ftjob == EventKind.PROGRESS]
    assert [e.step for e in progress] == [1, 2]
    assert progress[0].metrics and "rewards/accuracy/mean" in progress[0].metrics
    status = operator_progress(events)
    assert status.reward is not None and status.first_reward is not None
    assert status.rewards is not None and set(status.rewards) == {"accuracy"}
    rows = events[0].rows  # 2 prompts x 2 generations per step
    assert rows is not None and rows.examples_per_step == 2 and rows.generations_per_prompt == 2
    assert (Path(plan.output.local_dir) / "final" / "adapter_config.json").is_file()


def test_grpo_full_with_python_and_format_rewards(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = (
        "def brevity(completions, prompts, **columns):\n"
        "    return [-len(str(c)) / 100 for c in completions]\n"
    )
    rewards = [
        {"type": "Python", "code": code, "function": "brevity", "weight": 0.5},
        {"type": "Format"},
        {"type": "Accuracy"},
    ]
    plan = make_plan(
        "GRPO",
        "question_answer.jsonl",
        "QuestionAnswer",
        peft="None",
        hyperparameters=GRPO_HP,
        rewards=rewards,
    )
    code_, events = run_in_process(plan, tmp_path, capsys)
    assert code_ == 0, events
    metrics = next(e for e in events if e.ftjob == EventKind.PROGRESS).metrics or {}
    assert {"rewards/brevity/mean", "rewards/format/mean", "rewards/accuracy/mean"} <= set(metrics)
    assert metrics["rewards/brevity/mean"] < 0
