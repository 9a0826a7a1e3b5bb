"""The Kubernetes backend with its training pods really run (tests/cluster/podrunner.py plays the kubelet):
progress from pod logs, the model and GGUF on the Hub stand-in, a failing run's reason, and a pod killed
mid-run resuming from its last Hub checkpoint on the Job's retry."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cluster.podrunner import PodRunner
from tests.conftest import kubectl
from tests.e2e.conftest import TINY_REPO
from tests.e2e.support import apply, condition, events_for, ftj, phase_is, wait_for
from tests.hub import HubServer

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow, pytest.mark.hub]

TRAINING = {"maxSteps": 6, "maxLength": 128, "perDeviceBatchSize": 2, "gradientAccumulationSteps": 1,
            "loggingSteps": 1, "saveSteps": 3}  # fmt: skip


def pod_job(name: str, dataset: dict[str, Any], token_secret: str, **spec: Any) -> dict[str, Any]:
    """A LoRA run of the tiny model on the Kubernetes backend (its pod run by the pod runner)."""
    spec.setdefault("hyperparameters", TRAINING)
    return ftj(
        name,
        model=TINY_REPO,
        dataset=dataset,
        backend="Kubernetes",
        peft="LoRA",
        tokenSecretRef={"name": token_secret},
        **spec,
    )


def _pods(namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)[
        "items"
    ]
    return sorted(items, key=lambda p: p["metadata"]["creationTimestamp"])


def test_pod_trains_reports_progress_from_its_log_and_pushes_model_and_gguf(
    namespace: str,
    run_operator: Any,
    pod_runner: PodRunner,
    alpaca_dataset: dict[str, Any],
    token_secret: str,
    hub: HubServer,
) -> None:
    repo = f"tester/{namespace}-k8s"
    manifest = pod_job(
        "k8s-sft",
        alpaca_dataset,
        token_secret,
        hyperparameters=TRAINING,
        output={"repo": repo, "gguf": ["Q4_K_M"]},
    )
    with run_operator(**pod_runner.operator_env):
        apply(namespace, manifest)
        running = wait_for(
            namespace,
            "k8s-sft",
            lambda o: (o.get("status", {}).get("progress") or {}).get("step", 0) > 0,
            timeout=300,
        )
        obj = wait_for(namespace, "k8s-sft", phase_is("Succeeded", "Failed"), timeout=600)
    assert running["status"]["phase"] in ("Running", "Publishing")  # live, before the job ended
    assert running["status"]["progress"]["totalSteps"] == 6
    status = obj["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert status["progress"]["step"] == 6 and status["progress"]["loss"] > 0
    assert status["outputs"]["model"].endswith(repo)
    assert any(u.endswith("Q4_K_M.gguf") for u in status["outputs"]["gguf"])
    assert condition(obj, "GGUFPushed")["status"] == "True"  # type: ignore[index]
    assert any(f.endswith("-Q4_K_M.gguf") for f in hub.store.list_files("model", f"{repo}-GGUF"))
    (pod,) = _pods(namespace)
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    log = kubectl("logs", "-n", namespace, pod["metadata"]["name"]).stdout
    assert '"ftjob":"done"' in log
    # The token reached the process through its secretKeyRef only: neither the pod spec nor its log holds it.
    from tests.hub import DEFAULT_TOKEN

    assert DEFAULT_TOKEN not in json.dumps(pod) and DEFAULT_TOKEN not in log


def test_a_killed_pod_resumes_from_its_hub_checkpoint_on_the_jobs_retry(
    namespace: str,
    run_operator: Any,
    pod_runner: PodRunner,
    alpaca_dataset: dict[str, Any],
    token_secret: str,
) -> None:
    manifest = pod_job(
        "k8s-retry",
        alpaca_dataset,
        token_secret,
        hyperparameters={**TRAINING, "maxSteps": 24},
        output={"repo": f"tester/{namespace}-retry"},
    )
    with run_operator(**pod_runner.operator_env):
        apply(namespace, manifest)
        wait_for(
            namespace,
            "k8s-retry",
            lambda o: (o.get("status", {}).get("progress") or {}).get("step", 0) >= 5,
            timeout=300,
        )
        # The node kills the container (no SIGTERM, no checkpoint on the way out).
        (run,) = pod_runner.runs.values()
        run.proc.kill()
        obj = wait_for(namespace, "k8s-retry", phase_is("Succeeded", "Failed"), timeout=600)
    status = obj["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    first, second = _pods(namespace)
    assert first["status"]["phase"] == "Failed"
    assert first["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    log = kubectl("logs", "-n", namespace, second["metadata"]["name"]).stdout
    starts = [json.loads(line[line.index("{") :]) for line in log.splitlines() if '"ftjob":"start"' in line]
    assert starts and 3 <= starts[0].get("resumedFromStep", 0) < 24, starts
    assert status["progress"]["step"] == 24
    # The Job's own retry is said, not hidden inside the attempt.
    assert status["backendRef"]["restarts"] == 1 and status["attempts"] == 1
    assert "RunRestarted" in [e["reason"] for e in events_for(namespace, "k8s-retry")]


def test_a_failing_training_pod_fails_the_job_with_the_runtimes_reason(
    namespace: str,
    run_operator: Any,
    pod_runner: PodRunner,
    alpaca_dataset: dict[str, Any],
    token_secret: str,
    hub: HubServer,
) -> None:
    manifest = pod_job("k8s-fail", alpaca_dataset, token_secret, hyperparameters=TRAINING)
    with run_operator(**pod_runner.operator_env):
        apply(namespace, manifest)
        wait_for(namespace, "k8s-fail", lambda o: o.get("status", {}).get("backendRef") is not None)
        # Validated and submitted; then the model's files vanish from the Hub for the training pods.
        rule = hub.faults.server_error(rf"/{TINY_REPO}/resolve/", status=404, times=1000)
        try:
            obj = wait_for(namespace, "k8s-fail", phase_is("Succeeded", "Failed"), timeout=600)
        finally:
            hub.faults.clear()
    assert rule is not None
    failed = condition(obj, "Failed")
    assert obj["status"]["phase"] == "Failed" and failed is not None
    # The runtime's own error, read from the pod's log, not the Job controller's BackoffLimitExceeded.
    assert failed["reason"] == "TrainingFailed", failed
    assert "couldn't connect" in failed["message"] and "load the files" in failed["message"], failed
    assert "load the files" in obj["status"]["message"]
    pods = _pods(namespace)
    assert pods and all(p["status"]["phase"] == "Failed" for p in pods)
    assert all(p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1 for p in pods)
