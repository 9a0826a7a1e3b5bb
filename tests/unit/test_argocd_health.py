"""The Argo CD health check for FineTuneJob (examples/gitops/argocd-health-finetunejob.lua), run with lupa
as Argo CD runs it: the live object in the global `obj`, the chunk returns {status, message}."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from finetune_operator.api.status import FineTuneJobStatus

ROOT = Path(__file__).resolve().parents[2]
GITOPS = ROOT / "examples" / "gitops"
SCRIPT = (GITOPS / "argocd-health-finetunejob.lua").read_text()
ARGO_HEALTH = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
T = "2026-11-25T10:00:00Z"


def condition(kind: str, status: str, reason: str = "Reason", message: str = "") -> dict[str, Any]:
    """A condition as the operator writes it."""
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": T}


PLAN = {
    "backend": "Kubernetes",
    "target": "Kubernetes/1xNVIDIA-A10G",
    "gpuCount": 1,
    "peft": "LoRA",
    "memoryGib": 14.5,
    "estimatedHours": 1.25,
    "estimatedCostUSD": 0.75,
    "suggestedTimeout": "3h",
    "reason": "fits one A10G with LoRA",
}


def job(status: dict[str, Any] | None, suspend: bool = False) -> dict[str, Any]:
    """A FineTuneJob whose status is checked against the real status model first."""
    obj: dict[str, Any] = {
        "apiVersion": "finetune.dev/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "j", "namespace": "ml", "generation": 1},
        "spec": {"model": {"name": "Qwen/Qwen3-0.6B"}, "dataset": {"name": "a/b"}, "method": "SFT"},
    }
    if suspend:
        obj["spec"]["suspend"] = True
    if status is not None:
        obj["status"] = FineTuneJobStatus.model_validate(status).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
    return obj


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """Run the script on `obj` in a Lua state without io/os/require (Argo CD's sandbox has none)."""
    from lupa import LuaRuntime

    lua = LuaRuntime(unpack_returned_tuples=True)
    g = lua.globals()
    for unsafe in ("io", "os", "require", "dofile", "loadfile", "package", "debug"):
        g[unsafe] = None
    g.obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(SCRIPT)
    assert hs is not None, "the script must return a table"
    status, message = hs["status"], hs["message"]
    assert status in ARGO_HEALTH
    assert isinstance(message, str) and message
    return status, message


def test_no_status_is_progressing() -> None:
    status, message = health(job(None))
    assert status == "Progressing" and "operator" in message


def test_pending_is_progressing() -> None:
    assert health(job({"phase": "Pending"}))[0] == "Progressing"


def test_running_shows_progress_and_message() -> None:
    obj = job(
        {
            "phase": "Running",
            "conditions": [condition("Submitted", "True"), condition("Training", "True")],
            "progress": {"step": 42, "totalSteps": 100, "percent": "42%"},
            "message": "step 42/100, loss 1.23",
        }
    )
    assert health(obj) == ("Progressing", "Running 42%: step 42/100, loss 1.23")


def test_suspended_plan_is_suspended_with_the_plan_and_cost() -> None:
    obj = job(
        {"phase": "Suspended", "conditions": [condition("HardwarePlanned", "True")], "plan": PLAN},
        suspend=True,
    )
    status, message = health(obj)
    assert status == "Suspended"
    assert "Kubernetes/1xNVIDIA-A10G" in message and "$0.75" in message and "suspend" in message


def test_suspended_before_planning_says_how_to_launch() -> None:
    status, message = health(job({"phase": "Validating"}, suspend=True))
    assert status == "Suspended" and "spec.suspend" in message


def test_planned_without_suspend_is_progressing_with_the_plan() -> None:
    status, message = health(job({"phase": "Planned", "plan": PLAN}))
    assert status == "Progressing" and "Kubernetes/1xNVIDIA-A10G" in message


def test_blocked_is_degraded_with_what_to_fix() -> None:
    blocked = condition("Blocked", "True")
    blocked.update(reason="TokenSecretNotFound", message="Secret `hf-token` does not exist")
    status, message = health(job({"phase": "Blocked", "conditions": [blocked]}))
    assert status == "Degraded"
    assert "TokenSecretNotFound" in message and "hf-token" in message


def test_succeeded_is_healthy_with_the_model() -> None:
    obj = job(
        {
            "phase": "Succeeded",
            "conditions": [condition("Complete", "True", "Succeeded", "trained and pushed")],
            "outputs": {"model": "https://huggingface.co/my-org/m"},
        }
    )
    assert health(obj) == ("Healthy", "Fine-tuned model: https://huggingface.co/my-org/m")


def test_complete_condition_wins_over_a_stale_phase() -> None:
    obj = job({"phase": "Publishing", "conditions": [condition("Complete", "True", "Succeeded", "done")]})
    assert health(obj) == ("Healthy", "done")


def test_failed_is_degraded_with_the_status_message() -> None:
    obj = job(
        {
            "phase": "Failed",
            "conditions": [condition("Failed", "True", "DatasetIncompatible", "no chosen/rejected")],
            "message": "DPO needs chosen/rejected: set `spec.dataset.conversion`",
        }
    )
    assert health(obj) == ("Degraded", "DPO needs chosen/rejected: set `spec.dataset.conversion`")


def test_failed_condition_message_when_status_has_none() -> None:
    obj = job({"phase": "Running", "conditions": [condition("Failed", "True", "OutOfMemory", "CUDA OOM")]})
    assert health(obj) == ("Degraded", "CUDA OOM")


def test_cancelled_is_degraded() -> None:
    status, message = health(job({"phase": "Cancelled"}))
    assert status == "Degraded" and "Cancelled" in message


def test_cm_patch_carries_the_same_script_under_argo_cds_key() -> None:
    patch = yaml.safe_load((GITOPS / "argocd-cm-patch.yaml").read_text())
    assert patch["kind"] == "ConfigMap" and patch["metadata"]["name"] == "argocd-cm"
    assert patch["data"]["resource.customizations.health.finetune.dev_FineTuneJob"] == SCRIPT


@pytest.mark.parametrize("phase", ["Pending", "Validating", "Planned", "Queued", "Running", "Publishing"])
def test_every_non_terminal_phase_is_progressing(phase: str) -> None:
    assert health(job({"phase": phase}))[0] == "Progressing"
