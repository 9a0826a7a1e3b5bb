"""What the Kubernetes backend reads from a Job: Kueue's reason while it waits, preemption, early outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from finetune_operator.backends.base import JobTarget, WorkRef, WorkState
from finetune_operator.backends.kubernetes import KubernetesBackend
from finetune_operator.cluster.watched import WatchedWork, trim_job
from finetune_operator.config import OperatorConfig

TARGET = JobTarget(namespace="ml", name="bot", uid="u1")
REF = WorkRef(kind="Job", id="ftj-bot-u1", namespace="ml", attempt=1)


def backend(job: client.V1Job, workloads: list[dict[str, Any]]) -> KubernetesBackend:
    b = KubernetesBackend(client.ApiClient(), OperatorConfig(enabled_backends=[], metrics_port=0))
    b.batch.read_namespaced_job = lambda name, namespace: job  # type: ignore[method-assign]
    b.custom.list_namespaced_custom_object = lambda *a, **kw: {"items": workloads}  # type: ignore[method-assign]
    local_queue = {"spec": {"clusterQueue": "gpus"}}
    b.custom.get_namespaced_custom_object = lambda *a, **kw: local_queue  # type: ignore[method-assign]
    b.core.list_namespaced_pod = lambda *a, **kw: client.V1PodList(items=[])  # type: ignore[method-assign]
    return b


def job(
    suspend: bool = False,
    conditions: list[client.V1JobCondition] | None = None,
    age: timedelta = timedelta(minutes=5),
) -> client.V1Job:
    meta = client.V1ObjectMeta(
        name=REF.id,
        uid="job-uid",
        labels={"kueue.x-k8s.io/queue-name": "team-a"},
        creation_timestamp=datetime.now(UTC) - age,
    )
    return client.V1Job(
        metadata=meta, spec=client.V1JobSpec(template=client.V1PodTemplateSpec(), suspend=suspend),
        status=client.V1JobStatus(conditions=conditions),
    )  # fmt: skip


def workload(*conditions: dict[str, str]) -> dict[str, Any]:
    return {"status": {"conditions": list(conditions)}}


QUOTA = {"type": "QuotaReserved", "status": "False", "reason": "Pending",
         "message": "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu"}  # fmt: skip


def test_a_job_waiting_for_quota_says_what_kueue_says() -> None:
    work = backend(job(suspend=True), [workload(QUOTA)]).poll(TARGET, REF)
    assert work.state == WorkState.QUEUED and not work.preempted
    assert work.message.startswith(
        "waiting in Kueue LocalQueue `team-a` (ClusterQueue `gpus`): couldn't assign flavors"
    ), work.message


def test_a_job_kueue_took_back_is_preempted() -> None:
    evicted = {
        "type": "Evicted",
        "status": "True",
        "reason": "Preempted",
        "message": "Preempted to accommodate",
    }
    work = backend(job(suspend=True), [workload(QUOTA, evicted)]).poll(TARGET, REF)
    assert work.state == WorkState.QUEUED and work.preempted
    assert "preempted by Kueue (Preempted: Preempted to accommodate)" in work.message
    # Requeued and waiting again: still the preempted run, now with the quota reason.
    settled = {**evicted, "status": "False"}
    again = backend(job(suspend=True), [workload(QUOTA, settled)]).poll(TARGET, REF)
    assert again.preempted and "insufficient unused quota" in again.message


def test_no_workload_yet_names_what_to_check() -> None:
    work = backend(job(suspend=True), []).poll(TARGET, REF)
    assert work.state == WorkState.QUEUED and "is Kueue installed" in work.message


@pytest.mark.parametrize("watched", [False, True], ids=["read", "watched"])
def test_a_job_kueue_has_not_seen_yet_is_no_news(watched: bool) -> None:
    """Kueue makes the Workload within seconds: a Job just created has nothing to say yet (the job keeps its
    `submitted` message; a status write per queued job would say only that Kueue is a second behind)."""
    young = job(suspend=True, age=timedelta(seconds=2))
    b = backend(young, [])
    if watched:  # the Job as the operator's watch keeps it
        body = client.ApiClient().sanitize_for_serialization(young)
        b.watch_from(WatchedWork({(TARGET.namespace, REF.id): [trim_job(body)]}, {}))
        b.batch.read_namespaced_job = None  # type: ignore[assignment,method-assign]
    work = b.poll(TARGET, REF)
    assert work.state == WorkState.QUEUED and work.message == ""


@pytest.mark.parametrize(
    ("kind", "state"), [("SuccessCriteriaMet", WorkState.SUCCEEDED), ("FailureTarget", WorkState.FAILED)]
)
def test_the_outcome_counts_while_the_last_pods_still_terminate(kind: str, state: WorkState) -> None:
    cond = client.V1JobCondition(type=kind, status="True", reason="BackoffLimitExceeded")
    assert backend(job(conditions=[cond]), []).poll(TARGET, REF).state == state
