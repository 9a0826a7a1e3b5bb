"""Held-out evaluation with real TRL on CPU: the base model's score first, then the trained model's, in the
events, the operator's status and the model card; and the gates that keep a worse model from being pushed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_training.events import EventKind
from finetune_training.plan import TrainingPlan
from tests.integration.training_support import operator_progress, run_in_process

pytestmark = pytest.mark.slow

# Enough full fine-tuning steps at a high rate for the tiny model to learn the Alpaca rows' words.
LEARN = {"maxSteps": 24, "learningRate": 3e-3, "perDeviceBatchSize": 4, "warmupRatio": 0.0}


def test_sft_evaluation_shows_the_model_learned(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = make_plan(
        "SFT", "alpaca.json", "Alpaca", peft="None", hyperparameters=LEARN,
        evaluation={"fraction": 0.2, "steps": 12},
    )  # fmt: skip
    code, events = run_in_process(plan, tmp_path, capsys)
    assert code == 0, events
    evaluations = [e for e in events if e.ftjob == EventKind.EVALUATION]
    assert evaluations[0].baseline and evaluations[0].step == 0, "the base model is scored first"
    assert [e.step for e in evaluations[1:]][:1] == [12] and evaluations[-1].step == 24
    base, final = evaluations[0].loss, evaluations[-1].loss
    assert base is not None and final is not None
    # Seeded, yet a run that learned nothing would stay near the base model's loss.
    assert final < 0.8 * base, (base, final)
    status = operator_progress(events)
    assert status.evaluation is not None
    assert status.evaluation.base_loss == pytest.approx(base, rel=1e-4)
    assert status.evaluation.loss == pytest.approx(final, rel=1e-4)
    assert status.evaluation.metrics and "mean_token_accuracy" in status.evaluation.metrics
    card = (Path(plan.output.local_dir) / "final" / "README.md").read_text()
    assert "## Evaluation" in card and "| loss |" in card


def test_an_evaluation_gate_keeps_a_worse_model_from_being_pushed(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = make_plan(
        "SFT", "alpaca.json", "Alpaca", hyperparameters={"maxSteps": 2},
        evaluation={"fraction": 0.2, "maxLoss": 0.01},
    )  # fmt: skip
    code, events = run_in_process(plan, tmp_path, capsys)
    assert code != 0
    error = next(e for e in events if e.ftjob == EventKind.ERROR)
    assert error.reason == "EvaluationGateFailed" and "evaluation.maxLoss" in (error.message or "")
    assert not (Path(plan.output.local_dir) / "final").exists(), "nothing saved to publish"
    assert not [e for e in events if e.ftjob == EventKind.PUBLISHED]
