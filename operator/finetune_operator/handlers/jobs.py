"""FineTuneJob handlers: parse, reconcile, patch status, post Events. Nothing else."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import kopf
from pydantic import ValidationError

from finetune_operator import GROUP, PLURAL, VERSION
from finetune_operator.api.resource import FineTuneJob
from finetune_operator.api.status import TERMINAL_PHASES, Phase
from finetune_operator.config import OperatorConfig
from finetune_operator.errors import RetryLater, SpecError
from finetune_operator.handlers.errors import kopf_errors
from finetune_operator.handlers.startup import FINALIZER
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


def _unhandled(status: kopf.Status, meta: kopf.Meta) -> bool:
    """Whether this generation of the spec has not been reconciled yet (a new job, a spec edit)."""
    return status.get("observedGeneration") != meta.get("generation")


def _active(status: kopf.Status, meta: kopf.Meta | None = None, **_: Any) -> bool:
    """Whether the timer should look at the job: not for a terminal one, nor for one suspended before any
    run (it waits for a spec edit, which the event handler sees at once; nothing else can move it), unless
    its current generation is still unhandled (a pass that could not write its status)."""
    if meta is not None and _unhandled(status, meta):
        return True
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


def _apply(body: kopf.Body, deps: Deps, memory: JobMemory, *, wait: bool = True) -> None:
    """One pass over the job under its lock, then its Events. `wait=False` (a timer tick): when another pass
    holds the lock, that pass does the work, and the tick gives its worker thread back at once instead of
    queueing behind it."""
    if not memory.lock.acquire(blocking=wait):
        return
    try:
        events = _pass(body, deps, memory)
    finally:
        memory.lock.release()
    _post(body, events)


def _pass(body: kopf.Body, deps: Deps, memory: JobMemory) -> list[EventRecord]:
    meta = body["metadata"]
    # Under the job's lock, a handler and a timer never act on each other's stale status: the watch's body
    # will do when it holds this process's last read or write (`JobMemory.current`), else read afresh.
    if memory.current(body):
        fresh: dict[str, Any] | None = dict(body)
    else:
        fresh = deps.status_writer.read(meta["namespace"], meta["name"])
    if fresh is None or fresh["metadata"].get("deletionTimestamp"):
        return []
    memory.seen(fresh["metadata"].get("resourceVersion"))
    try:
        job = FineTuneJob.from_body(fresh)
    except ValidationError as err:
        # Admission let through what the models refuse: say which field, instead of kopf retrying.
        outcome = reject_malformed(fresh, err)
        old = fresh.get("status") or {}
        deps.status_writer.patch_status(meta["namespace"], meta["name"], old, outcome.status.wire())
        return outcome.events
    with deps.metrics.time_reconcile():
        outcome = reconcile(job, deps, memory)
    written = deps.status_writer.patch_status(
        job.metadata.namespace, job.metadata.name, job.status.wire(), outcome.status.wire()
    )
    memory.seen(written)
    return outcome.events


def _post(body: kopf.Body, events: list[EventRecord]) -> None:
    meta = body["metadata"]
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])
        # Logged to the operator's log only: kopf's object `logger` would post a Warning a second time,
        # as a "Logging" Event (one more API write saying the same).
        level = logging.WARNING if event.type == "Warning" else logging.INFO
        log.log(level, "[%s/%s] %s: %s", meta["namespace"], meta["name"], event.reason, event.message)


def _changed(body: kopf.Body, status: kopf.Status, meta: kopf.Meta, **_: Any) -> bool:
    """A watch event worth a pass now: a generation not handled yet (a new job, a spec edit), on an object
    that holds the finalizer (so its work can always be cancelled) and is not being deleted. The status the
    operator writes carries `observedGeneration`, so its own writes wake nothing."""
    finalizers = meta.get("finalizers") or ()
    return FINALIZER in finalizers and not meta.get("deletionTimestamp") and _unhandled(status, meta)


@kopf.on.event(*RESOURCE, when=_changed)
def on_change(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """A new or edited FineTuneJob: take the next step now.

    A watch-event handler, not kopf's create/update/resume handlers: those need kopf's copy of the last handled
    spec (the `last-handled-configuration` annotation: one more API write per job and per edit) and its
    progress annotations, while the phase machine is level-based and `status.observedGeneration` already says
    which spec it has handled. A pass that fails is taken up by the timer (`_active`), and after a restart the
    timer's first tick is the resume.
    """
    with kopf_errors():
        _apply(body, memo.deps, job_memory(memo))


# The first tick waits a period: a new generation is the event handler's (a tick at once would only queue
# behind it for the job's lock), and a running job's first look after a restart can wait that long.
@kopf.timer(*RESOURCE, interval=POLL_SECONDS, initial_delay=POLL_SECONDS, when=_active)
def on_tick(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Poll running work, follow progress, and retry transient failures."""
    if not memo.deps.pacing.due(body["metadata"]["uid"]):
        return  # watch-fed work that rests: no event since the last look, and its next look is not due
    with kopf_errors():
        _apply(body, memo.deps, job_memory(memo), wait=False)


# Deletions run on threads of their own: passes blocked on a slow Hub (a burst of new jobs validating, a model's
# metadata) can hold every one of kopf's worker threads, and must not hold up another job's deletion.
DELETION_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ftjob-delete")


@kopf.on.delete(*RESOURCE)
async def on_delete(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Cancel the backend work, then let the FineTuneJob go (a vanished backend never blocks deletion)."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(DELETION_THREADS, partial(_delete, body, memo, logger))


def _delete(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger) -> None:
    """Under the job's lock, from a body that holds the last status written (read afresh when the watch's is
    older): a tick that began before the deletion may have submitted work by now, and that work must be
    cancelled too.
    """
    deps: Deps = memo.deps
    deps.pacing.forget(body["metadata"]["uid"])
    memory = job_memory(memo)
    with memory.lock:  # kopf drops the memo (and the JobMemory) once the object is gone
        fresh: dict[str, Any] | None = None
        if not memory.current(body):
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
