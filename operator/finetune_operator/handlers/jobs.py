"""FineTuneJob handlers: parse, reconcile, patch status, post Events. Nothing else."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from finetune_operator import GROUP, PLURAL, VERSION
from finetune_operator.api.resource import FineTuneJob
from finetune_operator.api.status import TERMINAL_PHASES, Phase
from finetune_operator.config import OperatorConfig
from finetune_operator.errors import RetryLater, SpecError
from finetune_operator.handlers.errors import kopf_errors
from finetune_operator.lifecycle.reconcile import (
    Deps,
    EventRecord,
    JobMemory,
    cancel_work,
    reconcile,
    reject_malformed,
)

RESOURCE = (GROUP, VERSION, PLURAL)
log = logging.getLogger(__name__)
# The timer's period is fixed when handlers are registered, so it is read from the configuration here.
POLL_SECONDS = OperatorConfig.load().poll_interval_seconds
TERMINAL = {p.value for p in TERMINAL_PHASES}
SUSPENDED = Phase.SUSPENDED.value


def _active(status: kopf.Status, **_: Any) -> bool:
    """Whether the timer should look at the job: not for a terminal one, nor for one suspended before any
    run (it waits for a spec edit, which the update handler sees at once; nothing else can move it)."""
    phase = status.get("phase")
    if phase == SUSPENDED and not status.get("backendRef"):
        return False
    return phase not in TERMINAL


def job_memory(memo: kopf.Memo) -> JobMemory:
    """This job's :class:`JobMemory`, in kopf's per-object memo.

    kopf gives each object a memo of its own (a shallow copy of the operator-wide memo, so `memo.deps` is the
    shared one), made when it first sees the object, passed to every handler and to the timer of that object,
    and dropped once the object is deleted. `setdefault` is one dict operation under the GIL: a timer tick and
    a handler arriving at once (kopf runs them in separate threads) get the same JobMemory.
    """
    memory: JobMemory = memo.setdefault("job_memory", JobMemory())
    return memory


def _apply(body: kopf.Body, deps: Deps, memory: JobMemory) -> None:
    meta = body["metadata"]
    with memory.lock:
        # Read afresh under the job's lock: a handler and a timer never act on each other's stale status. The
        # watch's body will do when it is the very version this process last read or wrote.
        if deps.pacing.current(body):
            fresh: dict[str, Any] | None = dict(body)
        else:
            fresh = deps.status_writer.read(meta["namespace"], meta["name"])
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return
        deps.pacing.seen(meta["uid"], fresh["metadata"].get("resourceVersion"))
        try:
            job = FineTuneJob.from_body(fresh)
        except ValidationError as err:
            # Admission let through what the models refuse: say which field, instead of kopf retrying.
            outcome = reject_malformed(fresh, err)
            old = fresh.get("status") or {}
            deps.status_writer.patch_status(meta["namespace"], meta["name"], old, outcome.status.wire())
            _post(body, outcome.events)
            return
        with deps.metrics.time_reconcile():
            outcome = reconcile(job, deps, memory)
        written = deps.status_writer.patch_status(
            job.metadata.namespace, job.metadata.name, job.status.wire(), outcome.status.wire()
        )
        deps.pacing.seen(meta["uid"], written)
    _post(body, outcome.events)


def _post(body: kopf.Body, events: list[EventRecord]) -> None:
    meta = body["metadata"]
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])
        # Logged to the operator's log only: kopf's object `logger` would post a Warning a second time,
        # as a "Logging" Event (one more API write saying the same).
        level = logging.WARNING if event.type == "Warning" else logging.INFO
        log.log(level, "[%s/%s] %s: %s", meta["namespace"], meta["name"], event.reason, event.message)


@kopf.on.create(*RESOURCE)
@kopf.on.resume(*RESOURCE, when=_active)
@kopf.on.update(*RESOURCE, field="spec")
def on_change(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """A new, resumed or edited FineTuneJob: take the next step now."""
    with kopf_errors():
        _apply(body, memo.deps, job_memory(memo))


@kopf.timer(*RESOURCE, interval=POLL_SECONDS, when=_active)
def on_tick(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Poll running work, follow progress, and retry transient failures."""
    if not memo.deps.pacing.due(body["metadata"]["uid"]):
        return  # watch-fed work that rests: no event since the last look, and its next look is not due
    with kopf_errors():
        _apply(body, memo.deps, job_memory(memo))


@kopf.on.delete(*RESOURCE)
def on_delete(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Cancel the backend work, then let the FineTuneJob go (a vanished backend never blocks deletion).

    Under the job's lock, from a fresh read: a tick that began before the deletion may have submitted
    work (and written its status) by now, and that work must be cancelled too.
    """
    deps: Deps = memo.deps
    deps.pacing.forget(body["metadata"]["uid"])
    with job_memory(memo).lock:  # kopf drops the memo (and the JobMemory) once the object is gone
        try:
            fresh = deps.status_writer.read(body["metadata"]["namespace"], body["metadata"]["name"])
        except (RetryLater, SpecError):
            fresh = None  # the body we were given is the best we have
        try:
            job = FineTuneJob.from_body(fresh or body)
        except ValidationError:
            # A spec the models refuse never got past validation, so no backend work exists to cancel.
            logger.info("the spec cannot be read; nothing was submitted for it")
            return
        try:
            done = cancel_work(job, deps)
        except Exception as exc:  # any failure: deletion must not hang on a backend that is gone
            done = f"could not cancel backend work ({type(exc).__name__}); leaving it to its timeout"
    if done:
        logger.info(done)
    deps.metrics.remove_job(job.metadata.namespace, job.metadata.name)
    deps.metrics.job_phase_changed(
        f"{job.metadata.namespace}/{job.metadata.name}", job.status.phase.value, None
    )
