"""Which FineTuneJobs the timer looks at: waiting jobs cost nothing per tick when nothing but a spec edit can
move them (the update handler sees edits at once)."""

from __future__ import annotations

from typing import Any

import pytest


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
def test_the_timer_skips_terminal_and_never_run_suspended_jobs(status: dict[str, Any], ticks: bool) -> None:
    # Imported here, not at collection: the handlers fix the timer's period from the environment when
    # first imported, and the e2e tests in the same session set a 1 s period before starting the operator.
    from finetune_operator.handlers.jobs import _active

    assert _active(status) is ticks  # type: ignore[arg-type]


def test_a_generation_not_handled_yet_keeps_the_timer_on() -> None:
    """A spec edit whose pass failed to write its status (the event handler does not retry) is taken up by the
    timer, even where the job would otherwise rest (suspended before any run)."""
    from finetune_operator.handlers.jobs import _active

    suspended = {"phase": "Suspended", "observedGeneration": 1}
    assert _active(suspended, meta={"generation": 1}) is False  # type: ignore[arg-type]
    assert _active(suspended, meta={"generation": 2}) is True  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("meta", "status", "wakes"),
    [
        ({"generation": 1, "finalizers": ["finetune.dev/cancel-backend-work"]}, {}, True),  # new
        ({"generation": 1}, {}, False),  # kopf adds the finalizer first: its own event follows at once
        # the operator's own status write: this generation is handled, nothing to do
        (
            {"generation": 1, "finalizers": ["finetune.dev/cancel-backend-work"]},
            {"observedGeneration": 1},
            False,
        ),
        (
            {"generation": 2, "finalizers": ["finetune.dev/cancel-backend-work"]},
            {"observedGeneration": 1},
            True,
        ),
        (
            {"generation": 2, "finalizers": ["finetune.dev/cancel-backend-work"], "deletionTimestamp": "t"},
            {"observedGeneration": 1},
            False,  # being deleted: the delete handler's
        ),
    ],
)
def test_watch_events_wake_a_pass_only_for_an_unhandled_generation(
    meta: dict[str, Any], status: dict[str, Any], wakes: bool
) -> None:
    from finetune_operator.handlers.jobs import _changed

    assert _changed({}, status=status, meta=meta) is wakes  # type: ignore[arg-type]


def test_kopf_writes_no_copy_of_the_spec() -> None:
    """No `last-handled-configuration` annotation: one API write fewer per job and per spec edit."""
    import kopf

    from finetune_operator.handlers.startup import NoDiffBase

    storage = NoDiffBase()
    body = kopf.Body({"metadata": {"name": "a"}, "spec": {"model": {"name": "m"}}})
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    assert not patch and storage.fetch(body=body) is None


def test_a_tick_while_another_pass_holds_the_job_gives_its_thread_back() -> None:
    """The event handler's pass holds the job's lock: a tick does nothing (no read, no write) and returns at
    once, instead of holding one of the worker threads until that pass ends; the next tick takes it up."""
    import logging
    import threading

    import kopf

    from finetune_operator.handlers.jobs import job_memory, on_tick

    class Untouchable:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the tick used {name}")

    class Due:
        def due(self, uid: str) -> bool:
            return True

    deps = Untouchable()
    deps.__dict__["pacing"] = Due()
    memo = kopf.Memo(deps=deps)
    body = {"metadata": {"name": "j", "namespace": "ns", "uid": "u", "resourceVersion": "5"}, "spec": {}}
    tick = threading.Thread(
        target=on_tick, kwargs={"body": body, "memo": memo, "logger": logging.getLogger("test")}, daemon=True
    )
    with job_memory(memo).lock:
        tick.start()
        tick.join(timeout=10)
        assert not tick.is_alive(), "the tick waited for the job's lock"
