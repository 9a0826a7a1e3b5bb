"""When each FineTuneJob is looked at: at once for a new generation, on a poll interval (or the rest a pass
asked for, or its backoff) while anything can move it, never while only a spec edit can (its watch event
shows the edit at once)."""

from __future__ import annotations

import time
from typing import Any

import kopf
import pytest

from finetune_operator.config import OperatorConfig
from finetune_operator.handlers.jobs import MIN_LOOK_SECONDS, WatchedJobs, _active, next_look
from finetune_operator.handlers.startup import NoDiffBase
from finetune_operator.lifecycle.reconcile import Backoff, JobMemory


@pytest.mark.parametrize(
    ("status", "ticks"),
    [
        ({}, True),  # new: validate and plan
        ({"phase": "Blocked"}, True),  # the world may fix it: re-checked on the bounded timer
        ({"phase": "Running", "backendRef": {"kind": "Job", "id": "j"}}, True),
        ({"phase": "Suspended"}, False),  # planned, never run: only `suspend: false` moves it
        ({"phase": "Suspended", "backendRef": {"kind": "Job", "id": "j"}}, True),  # an attempt is stopping
        ({"phase": "Succeeded"}, False),
        ({"phase": "Failed"}, False),
    ],
)
def test_terminal_and_never_run_suspended_jobs_are_not_looked_at_without_an_event(
    status: dict[str, Any], ticks: bool
) -> None:
    assert _active(status) is ticks  # type: ignore[arg-type]


def test_a_generation_not_handled_yet_is_looked_at_again() -> None:
    """A spec edit whose pass failed to write its status is looked at again, even where the job would
    otherwise rest (suspended before any run)."""

    suspended = {"phase": "Suspended", "observedGeneration": 1}
    assert _active(suspended, meta={"generation": 1}) is False  # type: ignore[arg-type]
    assert _active(suspended, meta={"generation": 2}) is True  # type: ignore[arg-type]


class Metrics:
    def __init__(self) -> None:
        self.removed: list[tuple[str, str]] = []
        self.phases: list[tuple[str, str | None, str | None]] = []

    def remove_job(self, namespace: str, name: str) -> None:
        self.removed.append((namespace, name))

    def job_phase_changed(self, key: str, old: str | None, new: str | None) -> None:
        self.phases.append((key, old, new))


def watched_jobs() -> Any:

    config = OperatorConfig(enabled_backends=[], metrics_port=0, poll_interval_seconds=15)
    deps = type("Deps", (), {"metrics": Metrics(), "config": config})()
    return WatchedJobs(deps, workers=1)  # type: ignore[arg-type]


def body(generation: int = 1, **status: Any) -> Any:

    meta = {"name": "j", "namespace": "ns", "uid": "u", "generation": generation}
    return kopf.Body({"metadata": meta, "spec": {}, "status": status})


def test_a_new_job_and_a_spec_edit_are_looked_at_at_once_and_its_own_writes_wake_nothing() -> None:
    jobs = watched_jobs()
    jobs.seen(body())  # created: no finalizer needed first (the Kubernetes backend's work is owned)
    assert jobs.queue.due_in("u") == 0
    jobs.queue.forget("u")  # as if its pass ran
    jobs.seen(body(observedGeneration=1, phase="Planned"))  # the echo of the operator's own status write
    assert jobs.queue.due_in("u") is None
    jobs.seen(body(generation=2, observedGeneration=1, phase="Planned"))  # a spec edit
    assert jobs.queue.due_in("u") == 0


def test_a_job_seen_when_the_operator_starts_is_looked_at_after_a_poll_interval_if_anything_can_move_it() -> (
    None
):
    jobs = watched_jobs()
    jobs.seen(body(observedGeneration=1, phase="Running", backendRef={"kind": "Job", "id": "x"}))
    due = jobs.queue.due_in("u")
    assert due is not None and 14 < due <= 15  # the configured poll interval
    for waiting in ({"phase": "Suspended"}, {"phase": "Succeeded"}, {"phase": "Failed"}):
        idle = watched_jobs()
        idle.seen(body(observedGeneration=1, **waiting))
        assert idle.queue.due_in("u") is None, waiting


def test_a_deleted_job_is_forgotten_with_its_metrics() -> None:
    jobs = watched_jobs()
    jobs.seen(body())
    deleting = body()
    deleting["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    jobs.seen(deleting)
    assert jobs.queue.due_in("u") is None  # being deleted: the deletion handler's, if any
    jobs.gone(body(observedGeneration=1, phase="Running"))
    assert "u" not in jobs.jobs and jobs.look("u") is None
    assert jobs.deps.metrics.removed == [("ns", "j")]
    assert jobs.deps.metrics.phases == [("ns/j", "Running", None)]


def test_the_next_look_follows_the_backoff_then_the_rest_a_pass_asked_for() -> None:

    meta = {"generation": 2}
    running = {"phase": "Running", "observedGeneration": 2, "backendRef": {"kind": "Job", "id": "x"}}
    memory = JobMemory()
    assert next_look(running, meta, memory, 15.0) == 15.0
    memory.rest = 60.0
    assert next_look(running, meta, memory, 15.0) == 60.0
    memory.backoff = Backoff(time.monotonic() + 120, failures=3, generation=2)
    assert 119 < (next_look(running, meta, memory, 15.0) or 0) <= 120
    memory.backoff = Backoff(time.monotonic() - 5, failures=3, generation=2)  # ran out during the pass
    assert next_look(running, meta, memory, 15.0) == MIN_LOOK_SECONDS
    memory.backoff = Backoff(time.monotonic() + 120, failures=3, generation=1)  # an older generation's
    assert next_look(running, meta, memory, 15.0) == 60.0
    assert next_look({"phase": "Succeeded", "observedGeneration": 2}, meta, memory, 15.0) is None


def test_kopf_writes_no_copy_of_the_spec() -> None:
    """No `last-handled-configuration` annotation: one API write fewer per job and per spec edit."""

    storage = NoDiffBase()
    body = kopf.Body({"metadata": {"name": "a"}, "spec": {"model": {"name": "m"}}})
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    assert not patch and storage.fetch(body=body) is None


def test_a_job_found_gone_at_its_next_look_is_forgotten() -> None:
    """A watch that restarts from a new listing reports no deletion made while it was down: the next look
    that finds the job gone forgets it (its body, its next look, its metrics) instead of looking for ever."""
    jobs = watched_jobs()
    jobs.deps.status_writer = type("Gone", (), {"read": lambda self, namespace, name: None})()
    running = body(observedGeneration=1, phase="Running", backendRef={"kind": "Job", "id": "x"})
    running["metadata"]["resourceVersion"] = "5"
    jobs.seen(running)
    jobs.jobs["u"].memory.seen("9")  # this process wrote a later version: the pass reads afresh
    assert jobs.look("u") is None
    assert "u" not in jobs.jobs and jobs.queue.due_in("u") is None
    assert jobs.deps.metrics.removed == [("ns", "j")]
