"""Beyond one machine, as installed: a run over two nodes (an Indexed Job whose two pods really train, joined
by torchrun through the headless Service's names), and training Jobs queued by a real Kueue controller —
waiting for quota with Kueue's reason, admitted when quota frees, preempted and resumed, deleted."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.cluster.kueue import Kueue
from tests.cluster.podrunner import PodRunner
from tests.conftest import kubectl
from tests.e2e.support import apply, condition, events_for, jobs_in, phase_is, wait_for
from tests.e2e.test_kubernetes_pods import TRAINING
from tests.e2e.test_kubernetes_pods import pod_job as _job
from tests.hub import HubServer

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow, pytest.mark.hub]

H100 = "NVIDIA-H100-80GB-HBM3"


def _pods(namespace: str, selector: str) -> list[dict[str, Any]]:
    out = kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
    return list(json.loads(out)["items"])


def _gone(namespace: str, kinds: str, timeout: float) -> list[str]:
    """What is left of `kinds` in the namespace once it is empty, or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    left = kubectl("get", kinds, "-n", namespace, "-o", "name").stdout.split()
    while left and time.monotonic() < deadline:
        time.sleep(1)
        left = kubectl("get", kinds, "-n", namespace, "-o", "name").stdout.split()
    return left


def _step(obj: dict[str, Any]) -> int:
    return int((obj.get("status", {}).get("progress") or {}).get("step", 0))


def test_a_run_over_two_nodes_trains_as_one_and_is_removed_whole(
    namespace: str,
    run_operator: Any,
    pod_runner: PodRunner,
    alpaca_dataset: dict[str, Any],
    token_secret: str,
    hub: HubServer,
) -> None:
    repo = f"tester/{namespace}-2nodes"
    hardware = {"nodes": 2, "gpuCount": 1, "gpuProduct": H100}
    manifest = _job("two-nodes", alpaca_dataset, token_secret, hardware=hardware, output={"repo": repo})
    with run_operator(**pod_runner.operator_env):
        apply(namespace, manifest)
        obj = wait_for(namespace, "two-nodes", phase_is("Succeeded", "Failed"), timeout=600)
        status = obj["status"]
        assert status["phase"] == "Succeeded", json.dumps(status, indent=1)[:4000]
        assert status["plan"]["nodes"] == 2 and status["plan"]["gpuCount"] == 1
        assert status["progress"]["step"] == 6 and status["outputs"]["model"].endswith(repo)
        (job,) = jobs_in(namespace)
        name = job["metadata"]["name"]
        assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 2
        pods = sorted(
            _pods(namespace, f"batch.kubernetes.io/job-name={name}"), key=lambda p: p["spec"]["hostname"]
        )
        assert [p["status"]["phase"] for p in pods] == ["Succeeded", "Succeeded"]
        assert len({p["spec"]["nodeName"] for p in pods}) == 2, "one pod per node"
        logs = [kubectl("logs", "-n", namespace, p["metadata"]["name"]).stdout for p in pods]
        assert '"ftjob":"done"' in logs[0] and '"ftjob":"done"' not in logs[1], "node 0 alone reports"
        start = next(json.loads(x[x.index("{") :]) for x in logs[0].splitlines() if '"ftjob":"start"' in x)
        assert start["rows"]["examplesPerStep"] == 2 * 2, "one step's batch spans both nodes"
        service = json.loads(kubectl("get", "service", name, "-n", namespace, "-o", "json").stdout)
        assert service["spec"]["clusterIP"] == "None"
        kubectl("delete", "ftj", "two-nodes", "-n", namespace, "--wait=true", "--timeout=120s")
    # Everything the run made goes with it (owned by the FineTuneJob): the Job, its pods and the Service.
    left = _gone(namespace, "jobs,services,pods", 120)
    assert not left, left
    assert any(f.endswith("adapter_model.safetensors") for f in hub.store.list_files("model", repo))


@pytest.fixture
def queues(kueue: Kueue, namespace: str) -> Iterator[str]:
    """A ClusterQueue with one GPU of quota (less than two jobs need), Kueue's preemption within it by
    priority, a high WorkloadPriorityClass, and a LocalQueue `team` in the test namespace."""
    cluster_queue = f"{namespace}-gpus"
    manifest = [
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "default-flavor"}},
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "WorkloadPriorityClass",
         "metadata": {"name": "urgent"}, "value": 1000},
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": cluster_queue},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "preemption": {"withinClusterQueue": "LowerPriority"},
                "resourceGroups": [{
                    "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                    "flavors": [{"name": "default-flavor", "resources": [
                        {"name": "cpu", "nominalQuota": 256},
                        {"name": "memory", "nominalQuota": "4Ti"},
                        {"name": "nvidia.com/gpu", "nominalQuota": 1},
                    ]}],
                }],
            },
        },
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
         "metadata": {"name": "team", "namespace": namespace}, "spec": {"clusterQueue": cluster_queue}},
    ]  # fmt: skip
    text = yaml.safe_dump_all(manifest)
    kubectl("apply", "-f", "-", input=text)
    yield "team"
    # While Kueue still runs: its Workloads carry its finalizer, and would hold the namespace forever.
    kubectl("delete", "jobs", "--all", "-n", namespace, "--wait=false", check=False)
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
        and kubectl(
            "get", "workloads.kueue.x-k8s.io", "-n", namespace, "-o", "name", check=False
        ).stdout.strip()
    ):
        time.sleep(1)
    kubectl("delete", "clusterqueue", cluster_queue, "--ignore-not-found", "--wait=false", check=False)


def _urgent_job(namespace: str, queue: str) -> None:
    """Another team's urgent GPU work in the same ClusterQueue (a plain Job kwok runs for 15 s)."""
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "urgent", "labels": {"kueue.x-k8s.io/queue-name": queue,
                                                  "kueue.x-k8s.io/priority-class": "urgent"}},
        "spec": {
            "suspend": True,
            "template": {
                "metadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": "15s"}},
                "spec": {
                    "restartPolicy": "Never",
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{"name": "c", "image": "busybox", "resources": {
                        "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": "1"}}}],
                },
            },
        },
    }  # fmt: skip
    apply(namespace, job)


def test_queued_jobs_wait_for_kueue_quota_with_its_reason_and_are_preempted_and_resumed(
    namespace: str,
    run_operator: Any,
    pod_runner: PodRunner,
    alpaca_dataset: dict[str, Any],
    token_secret: str,
    queues: str,
) -> None:
    hardware = {"gpuCount": 1, "gpuProduct": H100}
    long = {**TRAINING, "maxSteps": 60}  # long enough to be running still when the others arrive
    first = _job("first", alpaca_dataset, token_secret, hardware=hardware, queue=queues,
                 hyperparameters=long, output={"repo": f"tester/{namespace}-first"})  # fmt: skip
    second = _job("second", alpaca_dataset, token_secret, hardware=hardware, queue=queues)
    with run_operator(**pod_runner.operator_env):
        apply(namespace, first)
        wait_for(namespace, "first", lambda o: _step(o) >= 1, timeout=300)
        apply(namespace, second)
        # One GPU of quota, held by `first`: `second` waits, saying what Kueue says.
        waiting = wait_for(
            namespace, "second",
            lambda o: "insufficient" in (o.get("status", {}).get("message") or ""), timeout=120,
        )  # fmt: skip
        assert waiting["status"]["phase"] == "Queued"
        assert f"LocalQueue `team` (ClusterQueue `{namespace}-gpus`)" in waiting["status"]["message"]
        assert "nvidia.com/gpu" in waiting["status"]["message"], waiting["status"]["message"]
        second_job = next(
            j for j in jobs_in(namespace) if j["metadata"]["labels"]["finetune.dev/job-name"] == "second"
        )
        assert second_job["spec"]["suspend"] is True and not _pods(
            namespace, f"job-name={second_job['metadata']['name']}"
        )

        # Urgent work preempts `first` through Kueue: its Job is suspended, the run checkpoints on SIGTERM,
        # and the job shows Queued with Kueue's reason instead of Running.
        _urgent_job(namespace, queues)
        preempted = wait_for(
            namespace, "first",
            lambda o: "preempted by Kueue" in (o.get("status", {}).get("message") or ""), timeout=120,
        )  # fmt: skip
        assert preempted["status"]["phase"] == "Queued", preempted["status"]
        assert condition(preempted, "Training")["reason"] == "Requeued"  # type: ignore[index]
        assert "Requeued" in [e["reason"] for e in events_for(namespace, "first")]

        # Quota frees (urgent ends, then each job in turn): both finish; `first` resumed from its checkpoint.
        done = wait_for(namespace, "first", phase_is("Succeeded", "Failed"), timeout=600)
        assert done["status"]["phase"] == "Succeeded", json.dumps(done["status"], indent=1)[:4000]
        assert done["status"]["progress"]["step"] == 60 and done["status"]["attempts"] == 1
        first_pods = sorted(
            _pods(namespace, "finetune.dev/job-name=first"), key=lambda p: p["metadata"]["creationTimestamp"]
        )
        log = kubectl("logs", "-n", namespace, first_pods[-1]["metadata"]["name"]).stdout
        starts = [json.loads(x[x.index("{") :]) for x in log.splitlines() if '"ftjob":"start"' in x]
        assert starts and starts[0].get("resumedFromStep", 0) >= 1, starts
        final = wait_for(namespace, "second", phase_is("Succeeded", "Failed"), timeout=600)
        assert final["status"]["phase"] == "Succeeded", json.dumps(final["status"], indent=1)[:4000]


def test_deleting_a_queued_job_removes_its_training_job_and_kueue_workload(
    namespace: str,
    run_operator: Any,
    alpaca_dataset: dict[str, Any],
    token_secret: str,
    queues: str,
) -> None:
    hardware = {"gpuCount": 4, "gpuProduct": H100}  # more than the ClusterQueue's quota: it never starts
    manifest = _job("never", alpaca_dataset, token_secret, hardware=hardware, queue=queues)
    with run_operator():
        apply(namespace, manifest)
        obj = wait_for(namespace, "never", lambda o: "Kueue" in (o.get("status", {}).get("message") or ""))
        assert obj["status"]["phase"] == "Queued"
        assert kubectl("get", "workloads.kueue.x-k8s.io", "-n", namespace, "-o", "name").stdout.strip()
        kubectl("delete", "ftj", "never", "-n", namespace, "--wait=true", "--timeout=60s")
    left = _gone(namespace, "jobs,workloads.kueue.x-k8s.io", 60)
    assert not left, left
