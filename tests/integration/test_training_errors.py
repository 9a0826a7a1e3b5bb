"""Runtime failures end in one `error` event with a CamelCase reason and exit code 1."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_training.events import EventKind
from finetune_training.plan import TrainingPlan
from tests.integration.training_support import events_of, run_in_process, subprocess_env, train_command

pytestmark = pytest.mark.slow


def test_qlora_is_refused_on_cpu(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = make_plan("SFT", "alpaca.json", "Alpaca", peft="QLoRA")
    code, events = run_in_process(plan, tmp_path, capsys)
    assert code == 1
    assert [(e.ftjob, e.reason) for e in events] == [(EventKind.ERROR, "QLoRANeedsCUDA")]


def test_grpo_without_an_answer_column_names_the_problem(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = make_plan("GRPO", "alpaca.json", "Alpaca", hyperparameters={"numGenerations": 2})
    code, events = run_in_process(plan, tmp_path, capsys)
    assert code == 1 and events[-1].reason == "RewardColumnMissing"
    assert "answer" in (events[-1].message or "")


def test_unmappable_rows_fail_before_training(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = make_plan("DPO", "alpaca.json", "Alpaca")
    code, events = run_in_process(plan, tmp_path, capsys)
    assert code == 1 and events[-1].reason == "DatasetIncompatible"
    assert "`chosen` and `rejected`" in (events[-1].message or "")


def test_ftjob_train_reads_the_plan_from_the_environment(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path
) -> None:
    plan = make_plan("SFT", "text.jsonl", hyperparameters={"maxSteps": 1})
    encoded = base64.b64encode(plan.model_dump_json(by_alias=True).encode()).decode()
    proc = subprocess.run(
        [sys.executable, "-m", "finetune_operator.cli.main", "train"],
        capture_output=True,
        text=True,
        env=subprocess_env(FTJOB_PLAN=encoded, HF_TOKEN="hf_secret_value_1"),
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = events_of(proc.stdout)
    assert events[0].ftjob == EventKind.START and events[-1].ftjob == EventKind.DONE
    assert "hf_secret_value_1" not in proc.stdout + proc.stderr


def test_a_bad_plan_is_an_error_event_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text('{"job": {"name": "x"}, "method": "PPO"}')
    proc = subprocess.run(train_command(bad), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    events = events_of(proc.stdout)
    assert len(events) == 1 and events[0].reason == "PlanInvalid"
    assert "`method`" in (events[0].message or "") and "Traceback" not in proc.stderr
