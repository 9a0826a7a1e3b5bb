"""Pure logic of the reconcile loop: conditions, phase summary, backend identity, plan rendering."""

from __future__ import annotations

import yaml

from finetune_operator.api.resource import FineTuneJob
from finetune_operator.api.status import ConditionType, FineTuneJobStatus, Phase, PlanSummary
from finetune_operator.cluster.identity import labels_for, work_name
from finetune_operator.config import OperatorConfig
from finetune_operator.lifecycle.conditions import get_condition, set_condition, summarise_phase
from finetune_operator.lifecycle.render import render_plan
from finetune_training.plan import Hyperparameters, PeftMode, TrainingPlan


def test_last_transition_time_moves_only_when_the_status_flips() -> None:
    status = FineTuneJobStatus()
    assert set_condition(status, ConditionType.SUBMITTED, "False", "Suspended", "held", 1)
    first = get_condition(status, "Submitted")
    assert first is not None
    first_time = first.last_transition_time
    assert not set_condition(status, ConditionType.SUBMITTED, "False", "Suspended", "held", 1)
    set_condition(status, ConditionType.SUBMITTED, "False", "Suspended", "still held", 2)
    again = get_condition(status, "Submitted")
    assert again is not None and again.last_transition_time == first_time and again.observed_generation == 2
    set_condition(status, ConditionType.SUBMITTED, "True", "Submitted", "", 2)
    assert [c.type for c in status.conditions] == ["Submitted"]


def test_conditions_are_kept_in_lifecycle_order() -> None:
    status = FineTuneJobStatus()
    set_condition(status, ConditionType.COMPLETE, "True", "Succeeded")
    set_condition(status, ConditionType.DATASET_VALIDATED, "True", "DatasetReady")
    assert [c.type for c in status.conditions] == ["DatasetValidated", "Complete"]


def test_phase_summarises_the_conditions() -> None:
    status = FineTuneJobStatus()
    assert summarise_phase(status) == Phase.PENDING
    set_condition(status, ConditionType.DATASET_VALIDATED, "True", "DatasetReady")
    assert summarise_phase(status) == Phase.VALIDATING
    set_condition(status, ConditionType.HARDWARE_PLANNED, "True", "Planned")
    assert summarise_phase(status) == Phase.PLANNED
    set_condition(status, ConditionType.SUBMITTED, "True", "Submitted")
    assert summarise_phase(status) == Phase.QUEUED
    set_condition(status, ConditionType.TRAINING, "True", "Running")
    assert summarise_phase(status) == Phase.RUNNING
    set_condition(status, ConditionType.TRAINING, "True", "Publishing")
    assert summarise_phase(status) == Phase.PUBLISHING
    set_condition(status, ConditionType.COMPLETE, "True", "Succeeded")
    assert summarise_phase(status) == Phase.SUCCEEDED
    set_condition(status, ConditionType.FAILED, "True", "Cancelled")
    assert summarise_phase(status) == Phase.CANCELLED
    set_condition(status, ConditionType.FAILED, "True", "Timeout")
    assert summarise_phase(status) == Phase.FAILED


def test_backend_names_derive_from_the_uid_and_are_dns_safe() -> None:
    uid = "0f9e8d7c-1234-5678-9abc-def012345678"
    name = work_name("My_Very.Long-Job-Name-" + "x" * 80, uid)
    assert name.startswith("ftj-my-very-long-job-name") and name.endswith("-0f9e8d7c")
    assert len(name) <= 63 and name == name.lower()
    assert work_name("a", uid) == work_name("a", uid)
    assert labels_for("a", uid)["finetune.dev/job-uid"] == uid


def _job() -> FineTuneJob:
    return FineTuneJob.model_validate(
        {
            "metadata": {"name": "bot", "namespace": "ml", "uid": "abcdef12-0000", "generation": 3},
            "spec": {
                "model": {"name": "Qwen/Qwen3-0.6B", "revision": "main"},
                "dataset": {"name": "org/data", "conversion": "Alpaca"},
                "method": "SFT",
                "output": {"repo": "org/bot", "gguf": ["Q4_K_M"]},
                "tokenSecretRef": {"name": "hf-token"},
            },
        }
    )


def test_the_plan_carries_the_resolved_choices_and_no_secret() -> None:
    summary = PlanSummary.model_validate(
        {
            "backend": "HFJobs", "target": "HFJobs/a10g-large", "flavor": "a10g-large", "peft": "LoRA",
            "memoryGib": 20, "estimatedHours": 1, "estimatedCostUSD": 1.5, "suggestedTimeout": "2h",
            "reason": "fits", "hyperparameters": Hyperparameters(learning_rate=1e-4).wire(),
        }
    )  # fmt: skip
    plan = render_plan(_job(), summary, OperatorConfig(), attempt=2)
    assert plan.peft == PeftMode.LORA and plan.resources.flavor == "a10g-large"
    assert plan.hyperparameters.learning_rate == 1e-4
    assert plan.output.gguf_repo == "org/bot-GGUF"
    assert plan.tracking.run_name == "bot-abcdef12-a2" and plan.tracking.project == "ml-bot"
    assert yaml.safe_load(plan.finetune_job_yaml or "")["spec"]["model"]["name"] == "Qwen/Qwen3-0.6B"
    text = plan.model_dump_json(by_alias=True)
    assert "hf-token" in text  # the Secret's name is in the embedded manifest; its value never is
    assert TrainingPlan.model_validate_json(text) == plan


def test_a_plan_without_hyperparameters_takes_the_methods_defaults() -> None:
    """A status plan written without `hyperparameters` renders the method profile's defaults for the PEFT
    mode (and the user's settings), not the generic class defaults."""
    from finetune_operator.planning.hyperparams import method_defaults
    from finetune_training.plan import Method
    from finetune_training.profiles import PROFILES

    job = _job()
    job.spec = job.spec.model_copy(
        update={"method": Method.DPO, "hyperparameters": None, "output": None, "rewards": None}
    )
    summary = PlanSummary.model_validate(
        {
            "backend": "HFJobs", "target": "HFJobs/a10g-large", "flavor": "a10g-large", "peft": "None",
            "memoryGib": 20, "estimatedHours": 1, "estimatedCostUSD": 1.5, "suggestedTimeout": "2h",
            "reason": "fits",
        }
    )  # fmt: skip
    assert summary.hyperparameters is None
    hp = render_plan(job, summary, OperatorConfig(), attempt=1).hyperparameters
    dpo = PROFILES[Method.DPO]
    assert hp.learning_rate == dpo.learning_rate_full != Hyperparameters().learning_rate
    assert hp.beta == dpo.default("beta") == 0.1
    assert hp.model_dump() == {**Hyperparameters().model_dump(), **method_defaults(Method.DPO, PeftMode.NONE)}
