"""Work Kubernetes pushes: a running Kubernetes-backend job reads its Job and pods from the watches' indexes, is
looked at again only after a watch event or `watched_poll_seconds`, and its object is read again only when
the watch's copy is older than the version last read or written: at most 2 API calls per running job per minute."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import kopf
from kubernetes import client

from finetune_operator.api.status import Phase
from finetune_operator.backends.base import JobTarget, WorkState
from finetune_operator.backends.kubernetes import KubernetesBackend
from finetune_operator.cluster.identity import labels_for, work_name
from finetune_operator.cluster.watched import WatchedWork, trim_job, trim_pod
from finetune_operator.config import OperatorConfig
from finetune_operator.handlers.indexes import training_jobs, training_pods
from finetune_operator.lifecycle.reconcile import Deps
from finetune_operator.lifecycle.status_writer import StatusWriter
from finetune_operator.metrics import OperatorMetrics
from tests.unit.test_reconcile import UID, FakeKube

NS, NAME = "ns", "demo"
JOB = work_name(NAME, UID, 1)
STARTED = "2026-12-06T10:00:00Z"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingApi:
    """Every API the operator calls, counted by method; answers what a running Job's world answers."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.calls: Counter[str] = Counter()
        self.body = body
        self.version = 1

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if name == "get_namespaced_custom_object":
                return self.body
            if name == "patch_namespaced_custom_object_status":
                status = args[-1]["status"]
                self.body["status"] = {k: v for k, v in status.items() if v is not None}
                self.version += 1
                return {"metadata": {"resourceVersion": str(self.version)}}
            if name == "read_namespaced_pod_log":
                return ""
            raise AssertionError(f"unexpected API call {name}")

        return call


def job_body(**status: Any) -> dict[str, Any]:
    labels = labels_for(NAME, UID, 1)
    return {
        "metadata": {"name": JOB, "namespace": NS, "uid": "job-uid", "labels": labels},
        "spec": {"template": {"spec": {"containers": []}}, "backoffLimit": 2},
        "status": status,
    }


def pod_body(name: str, created: str, **status: Any) -> dict[str, Any]:
    labels = {**labels_for(NAME, UID, 1), "job-name": JOB}
    return {
        "metadata": {"name": name, "namespace": NS, "labels": labels, "creationTimestamp": created},
        "status": status,
    }


def indexes() -> tuple[dict[Any, list[Any]], dict[Any, list[Any]]]:
    running = job_body(active=1, ready=1, startTime=STARTED)
    return {(NS, JOB): [trim_job(running)]}, {(NS, JOB): [trim_pod(pod_body(f"{JOB}-x", STARTED))]}


class Woken(list[str]):
    def wake(self, uid: str) -> None:
        self.append(uid)


def test_index_functions_trim_key_and_wake_the_owning_job() -> None:
    memo = kopf.Memo(jobs=Woken())
    keyed = asyncio.run(training_jobs(body=job_body(active=1), memo=memo))  # type: ignore[arg-type]
    assert list(keyed) == [(NS, JOB)] and keyed[(NS, JOB)]["status"] == {"active": 1}
    assert "template" in keyed[(NS, JOB)]["spec"] and "backoffLimit" not in keyed[(NS, JOB)]["spec"]
    assert memo.jobs == [UID]  # the event woke the FineTuneJob
    pods = asyncio.run(training_pods(body=pod_body("p", STARTED, phase="Running"), memo=memo))  # type: ignore[arg-type]
    assert list(pods) == [(NS, JOB)] and memo.jobs == [UID, UID]


def test_a_watched_backend_polls_finds_and_lists_pods_without_the_api() -> None:
    api = CountingApi({})
    backend = KubernetesBackend(client.ApiClient(), OperatorConfig(enabled_backends=[], metrics_port=0))
    backend.batch = backend.core = backend.custom = api  # type: ignore[assignment]
    jobs, pods = indexes()
    pods[(NS, JOB)].insert(0, trim_pod(pod_body(f"{JOB}-old", "2026-12-06T09:00:00Z", reason="Evicted")))
    backend.watch_from(WatchedWork(jobs, pods))
    target = JobTarget(namespace=NS, name=NAME, uid=UID)
    ref = backend.find(target)
    assert ref is not None and ref.id == JOB and backend.watched
    work = backend.poll(target, ref)
    assert work.state == WorkState.RUNNING and work.started_at is not None
    assert [p.metadata.name for p in backend._pods(target, ref)] == [f"{JOB}-old", f"{JOB}-x"]
    assert not api.calls
    # An attempt the index does not show: nothing found (a submit of fixed names is idempotent).
    assert backend.find(target.model_copy(update={"attempt": 2})) is None


def running_body() -> dict[str, Any]:
    """A FineTuneJob whose attempt runs as a Kubernetes Job (status as the phase machine wrote it)."""
    return {
        "apiVersion": "finetune.dev/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": NAME, "namespace": NS, "uid": UID, "generation": 1, "resourceVersion": "1"},
        "spec": {"model": {"name": "tester/tiny"}, "dataset": {"name": "tester/data"}, "method": "SFT"},
        "status": {
            "phase": Phase.RUNNING.value,
            "observedGeneration": 1,
            "attempts": 1,
            "backendRef": {"kind": "Job", "id": JOB, "namespace": NS, "attempt": 1},
            "plan": {
                "backend": "Kubernetes",
                "target": "Kubernetes/cpu",
                "peft": "LoRA",
                "memoryGib": 1.0,
                "estimatedHours": 1.0,
                "estimatedCostUSD": 0.0,
                "suggestedTimeout": "1h",
                "reason": "test",
            },
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "reason": t,
                    "message": "",
                    "observedGeneration": 1,
                    "lastTransitionTime": STARTED,
                }
                for t in ("DatasetValidated", "HardwarePlanned", "Submitted", "Training")
            ],
        },
    }


def test_a_running_kubernetes_job_costs_at_most_two_api_calls_a_minute() -> None:
    from finetune_operator.handlers import jobs as handlers

    posted: list[str] = []

    clock = Clock()
    body = running_body()
    api = CountingApi(body)
    config = OperatorConfig(enabled_backends=[], metrics_port=0)
    backend = KubernetesBackend(client.ApiClient(), config)
    backend.batch = backend.core = backend.custom = api  # type: ignore[assignment]
    jobs, pods = indexes()
    backend.watch_from(WatchedWork(jobs, pods))
    writer = StatusWriter(client.ApiClient())
    writer.custom = api  # type: ignore[assignment]
    deps = Deps(
        config=config,
        kube=FakeKube(),  # type: ignore[arg-type]
        backends={"Kubernetes": backend},  # type: ignore[dict-item]
        metrics=OperatorMetrics(),
        validate=lambda *a, **k: None,
        plan=lambda *a, **k: None,
        status_writer=writer,
    )
    watched = handlers.WatchedJobs(  # no worker threads: the test looks
        deps, workers=1, post=lambda body, type_, reason, message: posted.append(reason), clock=clock
    )
    body["metadata"]["resourceVersion"] = str(api.version)
    watched.seen(kopf.Body(body))  # the operator starts and lists the running job
    assert watched.queue.due_in(UID) == config.poll_interval_seconds  # its first look: a poll interval on
    rest = watched.look(UID)  # the first look starts from the watch's copy (this process has written nothing)
    assert rest == config.watched_poll_seconds  # its Job and pods are watched: the next look is a minute on
    body["metadata"]["resourceVersion"] = str(api.version)
    first = sum(api.calls.values())
    minutes = 10
    elapsed = 0.0
    while elapsed < minutes * 60:
        clock.now += rest
        elapsed += rest
        rest = watched.look(UID)
        assert rest is not None
        # The watch delivers what the operator wrote: the next look's body is that version.
        body["metadata"]["resourceVersion"] = str(api.version)
    per_minute = (sum(api.calls.values()) - first) / minutes
    assert per_minute <= 2, api.calls
    assert api.calls["read_namespaced_pod_log"] >= minutes  # progress is still read every minute
    assert api.calls["get_namespaced_custom_object"] == 0  # the watch's copy holds the version last written
    # A copy from before the last write (an event that arrived during the pass) is read afresh.
    body["metadata"]["resourceVersion"] = str(api.version - 1)
    watched.look(UID)
    assert api.calls["get_namespaced_custom_object"] == 1
    body["metadata"]["resourceVersion"] = str(api.version)
    # A watch event (the Job completed) brings the next look forward: seconds away, not a minute.
    jobs[(NS, JOB)] = [
        trim_job(job_body(startTime=STARTED, conditions=[{"type": "Complete", "status": "True"}]))
    ]
    watched.queue.add(UID, rest)
    watched.wake(UID)
    due = watched.queue.due_in(UID)
    assert due is not None and due <= handlers.WAKE_SECONDS < config.watched_poll_seconds
    before = sum(api.calls.values())
    assert watched.look(UID) is None  # finished: no next look
    assert sum(api.calls.values()) > before
    assert posted == ["TrainingStarted", "Succeeded"]  # each said once
