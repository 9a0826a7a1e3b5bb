"""YAML in, status out, on the Kubernetes backend: kwok runs the training pod (no real training)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from finetune_operator.cluster.identity import UID_LABEL
from tests.conftest import kubectl
from tests.e2e.conftest import TINY_REPO
from tests.e2e.support import apply, condition, events_for, ftj, get_ftj, jobs_in, phase_is, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


def test_job_walks_to_succeeded_on_a_gpu_node_of_the_planned_type(
    namespace: str, run_operator: Any, alpaca_dataset: dict[str, Any], token_secret: str
) -> None:
    manifest = ftj("sft-k8s", model=TINY_REPO, dataset=alpaca_dataset, tokenSecretRef={"name": token_secret})
    seen: list[str] = []
    with run_operator():
        apply(namespace, manifest)
        obj = wait_for(namespace, "sft-k8s", phase_is("Succeeded", "Failed"), seen=seen)
    status = obj["status"]
    assert status["phase"] == "Succeeded", status
    assert {"Planned", "Queued"} <= set(seen) or "Running" in seen, seen
    for type_ in ("DatasetValidated", "HardwarePlanned", "Submitted", "Complete"):
        assert condition(obj, type_)["status"] == "True", type_  # type: ignore[index]
        assert condition(obj, type_)["observedGeneration"] == obj["metadata"]["generation"]  # type: ignore[index]
    assert status["validation"]["verdicts"][0]["verdict"] == "Ready"
    plan = status["plan"]
    assert plan["backend"] == "Kubernetes" and plan["gpuCount"] >= 1
    (job,) = jobs_in(namespace)
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["nodeSelector"]["nvidia.com/gpu.product"] == plan["gpuProduct"]
    assert pod_spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == str(plan["gpuCount"])
    assert job["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    node = json.loads(kubectl("get", "node", pods[0]["spec"]["nodeName"], "-o", "json").stdout)
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == plan["gpuProduct"]
    events = {e["reason"]: e["message"] for e in events_for(namespace, "sft-k8s")}
    assert {"Submitted", "Succeeded"} <= events.keys(), events
    # One pass validated, planned and submitted: one Event, naming each step (each a searchable word).
    assert "DatasetValidated: " in events["Submitted"] and "HardwarePlanned: " in events["Submitted"]
    kubectl("wait", "-n", namespace, "--for=condition=Complete", "ftj/sft-k8s", "--timeout=5s")
    table = kubectl("get", "ftj", "-n", namespace).stdout
    assert "Succeeded" in table and "SFT" in table and TINY_REPO in table


def test_suspend_stops_after_the_plan_and_unsuspending_submits_exactly_once(
    namespace: str, run_operator: Any, alpaca_dataset: dict[str, Any], token_secret: str
) -> None:
    manifest = ftj(
        "held", model=TINY_REPO, dataset=alpaca_dataset, tokenSecretRef={"name": token_secret}, suspend=True
    )
    with run_operator():
        apply(namespace, manifest)
        obj = wait_for(namespace, "held", lambda o: condition(o, "Submitted") is not None)
        assert obj["status"]["phase"] == "Suspended"
        assert obj["status"]["plan"]["estimatedCostUSD"] >= 0
        assert condition(obj, "Submitted")["reason"] == "Suspended"  # type: ignore[index]
        assert jobs_in(namespace) == []
        kubectl("patch", "ftj", "held", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":false}}')
        obj = wait_for(namespace, "held", phase_is("Succeeded", "Failed"))
    assert obj["status"]["phase"] == "Succeeded"
    assert len(jobs_in(namespace)) == 1
    assert obj["status"]["attempts"] == 1


def test_restarted_operator_adopts_the_existing_job(
    namespace: str, run_operator: Any, alpaca_dataset: dict[str, Any], token_secret: str, operator_env: Any
) -> None:
    manifest = ftj("adopt", model=TINY_REPO, dataset=alpaca_dataset, tokenSecretRef={"name": token_secret})
    slow = {"FTJOB_POD_ANNOTATIONS": json.dumps({"pod-complete.stage.kwok.x-k8s.io/delay": "20s"})}
    with run_operator(**slow):
        apply(namespace, manifest)
        wait_for(namespace, "adopt", lambda o: o.get("status", {}).get("backendRef") is not None)
    # The operator died right after submitting, before its status write landed.
    kubectl(
        "patch", "ftj", "adopt", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"backendRef": None, "phase": "Planned", "attempts": 0}}),
    )  # fmt: skip
    assert get_ftj(namespace, "adopt")["status"].get("backendRef") is None
    with run_operator(**slow):
        obj = wait_for(namespace, "adopt", phase_is("Succeeded", "Failed"), timeout=90)
    assert obj["status"]["phase"] == "Succeeded"
    assert len(jobs_in(namespace)) == 1
    assert condition(obj, "Submitted")["reason"] == "Adopted"  # type: ignore[index]
    assert "Adopted" in {e["reason"] for e in events_for(namespace, "adopt")}


def test_deleting_a_running_job_removes_its_training_job_without_waiting_for_the_operator(
    namespace: str, run_operator: Any, alpaca_dataset: dict[str, Any], token_secret: str
) -> None:
    manifest = ftj("gone", model=TINY_REPO, dataset=alpaca_dataset, tokenSecretRef={"name": token_secret})
    slow = {"FTJOB_POD_ANNOTATIONS": json.dumps({"pod-complete.stage.kwok.x-k8s.io/delay": "600s"})}
    with run_operator(**slow):
        apply(namespace, manifest)
        obj = wait_for(namespace, "gone", phase_is("Running"))
        # Its Job, Secret and Service are owned by the FineTuneJob: Kubernetes' garbage collector removes
        # them, so the job holds no finalizer and its deletion waits for nobody.
        assert not obj["metadata"].get("finalizers")
        owned = [
            j for j in jobs_in(namespace) if j["metadata"]["labels"].get(UID_LABEL) == obj["metadata"]["uid"]
        ]
        assert owned and all(
            ref["uid"] == obj["metadata"]["uid"] for j in owned for ref in j["metadata"]["ownerReferences"]
        )
    # The operator is stopped: the deletion and the clean-up still happen.
    kubectl("delete", "ftj", "gone", "-n", namespace, "--timeout=60s")
    assert kubectl("get", "ftj", "gone", "-n", namespace, check=False).returncode != 0
    deadline = time.monotonic() + 60
    while any(not j["metadata"].get("deletionTimestamp") for j in jobs_in(namespace)):
        assert time.monotonic() < deadline, "the garbage collector left the training Job"
        time.sleep(0.5)
    secrets = json.loads(kubectl("get", "secrets", "-n", namespace, "-l", UID_LABEL, "-o", "json").stdout)
    deadline = time.monotonic() + 60
    while secrets["items"]:
        assert time.monotonic() < deadline, "the garbage collector left the run's Secret"
        time.sleep(0.5)
        secrets = json.loads(kubectl("get", "secrets", "-n", namespace, "-l", UID_LABEL, "-o", "json").stdout)


def test_deleting_a_job_whose_backend_work_is_gone_does_not_hang(
    namespace: str, run_operator: Any, alpaca_dataset: dict[str, Any], token_secret: str
) -> None:
    manifest = ftj("orphan", model=TINY_REPO, dataset=alpaca_dataset, tokenSecretRef={"name": token_secret})
    slow = {"FTJOB_POD_ANNOTATIONS": json.dumps({"pod-complete.stage.kwok.x-k8s.io/delay": "600s"})}
    with run_operator(**slow):
        apply(namespace, manifest)
        obj = wait_for(namespace, "orphan", lambda o: o.get("status", {}).get("backendRef") is not None)
        kubectl("delete", "job", obj["status"]["backendRef"]["id"], "-n", namespace)
        obj = wait_for(namespace, "orphan", phase_is("Failed"))
        assert condition(obj, "Failed")["reason"] == "BackendWorkLost"  # type: ignore[index]
        kubectl("delete", "ftj", "orphan", "-n", namespace, "--timeout=30s")


def test_no_token_in_status_events_job_spec_or_logs(
    namespace: str, run_operator: Any, alpaca_dataset: dict[str, Any], token_secret: str
) -> None:
    from tests.hub import DEFAULT_TOKEN

    manifest = ftj("secret", model=TINY_REPO, dataset=alpaca_dataset, tokenSecretRef={"name": token_secret})
    with run_operator() as op:
        apply(namespace, manifest)
        wait_for(namespace, "secret", phase_is("Succeeded", "Failed"))
    logs = op.logs()  # complete once the operator has stopped
    everything = [
        kubectl("get", "ftj", "secret", "-n", namespace, "-o", "yaml").stdout,
        kubectl("get", "events", "-n", namespace, "-o", "yaml").stdout,
        kubectl("get", "jobs,configmaps,pods", "-n", namespace, "-o", "yaml").stdout,
        logs,
    ]
    for text in everything:
        assert DEFAULT_TOKEN not in text
    (job,) = jobs_in(namespace)
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "value" not in env["HF_TOKEN"]
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token"}
    assert "Submitted: submitted Job" in logs  # the logs were really captured
