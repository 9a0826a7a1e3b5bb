"""The real tiny training, end to end: Local backend (a process) and HF Jobs (the stand-in runs the job)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import kubectl
from tests.e2e.conftest import TINY_REPO
from tests.e2e.support import apply, condition, events_for, ftj, get_ftj, phase_is, wait_for
from tests.hub import HubServer

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow, pytest.mark.hub]

TRAINING = {"maxSteps": 6, "maxLength": 128, "perDeviceBatchSize": 2, "gradientAccumulationSteps": 1,
            "loggingSteps": 1, "saveSteps": 3}  # fmt: skip


def _progress_seen(namespace: str, name: str) -> dict[str, Any]:
    return wait_for(
        namespace, name, lambda o: (o.get("status", {}).get("progress") or {}).get("step", 0) > 0, timeout=300
    )


def test_local_backend_trains_pushes_the_model_and_gguf(
    namespace: str, run_operator: Any, alpaca_dataset: dict[str, Any], token_secret: str, hub: HubServer
) -> None:
    repo = f"tester/{namespace}-sft"
    manifest = ftj(
        "local-sft",
        model=TINY_REPO,
        dataset=alpaca_dataset,
        backend="Local",
        peft="LoRA",
        hyperparameters=TRAINING,
        output={"repo": repo, "gguf": ["Q4_K_M"]},
        tokenSecretRef={"name": token_secret},
        evaluation={"fraction": 0.1},
    )
    with run_operator():
        apply(namespace, manifest)
        running = _progress_seen(namespace, "local-sft")
        obj = wait_for(namespace, "local-sft", phase_is("Succeeded", "Failed"), timeout=600)
    assert running["status"]["progress"]["totalSteps"] == 6
    status = obj["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert status["progress"]["step"] == 6 and status["progress"]["loss"] > 0
    assert status["outputs"]["model"].endswith(repo)
    assert any(u.endswith("Q4_K_M.gguf") for u in status["outputs"]["gguf"])
    assert condition(obj, "ModelPushed")["status"] == "True"  # type: ignore[index]
    assert condition(obj, "GGUFPushed")["status"] == "True"  # type: ignore[index]
    evaluation = status["progress"]["evaluation"]  # the base model's held-out loss, then the final one
    assert evaluation["baseLoss"] > 0 and evaluation["loss"] > 0 and evaluation["step"] == 6
    card = hub.store.read_file("model", repo, "README.md").decode()
    assert f"base_model: {TINY_REPO}" in card and "local-sft" in card and "## Evaluation" in card
    files = hub.store.list_files("model", f"{repo}-GGUF")
    assert any(f.endswith("-Q4_K_M.gguf") for f in files)
    log = Path(status["backendRef"]["url"].removeprefix("file://")).read_text()
    assert '"ftjob":"done"' in log


def test_hf_jobs_backend_runs_on_the_stand_in_and_survives_faults(
    namespace: str, run_operator: Any, alpaca_dataset: dict[str, Any], token_secret: str, hub: HubServer
) -> None:
    repo = f"tester/{namespace}-hf"
    manifest = ftj(
        "hf-sft",
        model=TINY_REPO,
        dataset=alpaca_dataset,
        backend="HFJobs",
        peft="LoRA",
        hyperparameters=TRAINING,
        output={"repo": repo},
        tokenSecretRef={"name": token_secret},
    )
    # The Hub answers 429 and 503 now and then: the operator retries, nothing is lost or doubled.
    hub.faults.rate_limit(r"/api/jobs/tester$", times=2, retry_after=1)
    hub.faults.server_error(r"/api/jobs/tester/[0-9a-f]+$", status=503, times=2)
    with run_operator():
        apply(namespace, manifest)
        obj = wait_for(
            namespace, "hf-sft", lambda o: o.get("status", {}).get("backendRef") is not None, timeout=120
        )
        plan = obj["status"]["plan"]
        assert plan["backend"] == "HFJobs" and plan["flavor"]
    # Restart mid-job: the new operator adopts the running HF Job instead of submitting another.
    with run_operator():
        _progress_seen(namespace, "hf-sft")
        obj = wait_for(namespace, "hf-sft", phase_is("Succeeded", "Failed"), timeout=600)
    status = obj["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert status["outputs"]["model"].endswith(repo)
    jobs = hub.jobs.list("tester", [], {"ftjob-uid": obj["metadata"]["uid"]})
    assert len(jobs) == 1
    spec = jobs[0].spec
    assert spec.flavor == plan["flavor"]
    assert "HF_TOKEN" in spec.secrets and "HF_TOKEN" not in (spec.environment or {})
    assert hub.store.read_file("model", repo, "README.md")
    reasons = {e["reason"] for e in events_for(namespace, "hf-sft")}
    assert "Submitted" in reasons


def test_deleting_an_hf_job_cancels_it(
    namespace: str, run_operator: Any, alpaca_dataset: dict[str, Any], token_secret: str, hub: HubServer
) -> None:
    manifest = ftj(
        "hf-cancel",
        model=TINY_REPO,
        dataset=alpaca_dataset,
        backend="HFJobs",
        peft="LoRA",
        hyperparameters={**TRAINING, "maxSteps": 10000},
        tokenSecretRef={"name": token_secret},
    )
    with run_operator():
        apply(namespace, manifest)
        obj = wait_for(namespace, "hf-cancel", phase_is("Running"), timeout=180)
        job_id = obj["status"]["backendRef"]["id"]
        # Work outside the cluster: the job took the operator's finalizer before it was submitted.
        assert obj["metadata"]["finalizers"] == ["finetune.dev/cancel-backend-work"]
        kubectl("delete", "ftj", "hf-cancel", "-n", namespace, "--timeout=60s")
    assert kubectl("get", "ftj", "hf-cancel", "-n", namespace, check=False).returncode != 0
    job = hub.jobs.wait_ended("tester", job_id)
    assert job is not None and job.stage == "CANCELED"


def test_missing_token_blocks_before_any_backend_work(
    namespace: str, run_operator: Any, alpaca_dataset: dict[str, Any]
) -> None:
    manifest = ftj("no-token", model=TINY_REPO, dataset=alpaca_dataset, backend="HFJobs")
    with run_operator():
        apply(namespace, manifest)
        obj = wait_for(namespace, "no-token", phase_is("Blocked"), timeout=60)
    # Fixable (add `tokenSecretRef`, or the operator's default Secret): it waits, it does not fail.
    assert condition(obj, "Blocked")["reason"] == "TokenMissing"  # type: ignore[index]
    assert condition(obj, "Failed") is None
    assert "tokenSecretRef" in obj["status"]["message"]
    assert obj["status"].get("backendRef") is None
    assert get_ftj(namespace, "no-token")["status"]["attempts"] == 0
