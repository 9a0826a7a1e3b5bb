"""FineTuneJob handlers: keep the watched jobs, run their passes from one work queue (parse, reconcile, patch
status, post Events), cancel work on deletion. Nothing else."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import kopf
from pydantic import ValidationError

from finetune_operator import FINALIZER, GROUP, PLURAL, VERSION
from finetune_operator.api.resource import FineTuneJob
from finetune_operator.api.status import TERMINAL_PHASES, Phase
from finetune_operator.errors import RetryLater, SpecError
from finetune_operator.lifecycle.reconcile import (
    Deps,
    EventRecord,
    JobMemory,
    cancel_work,
    reconcile,
    reject_malformed,
)
from finetune_operator.lifecycle.status_writer import JobGone
from finetune_operator.lifecycle.workqueue import WorkQueue

RESOURCE = (GROUP, VERSION, PLURAL)
log = logging.getLogger(__name__)
WAKE_SECONDS = 5.0
"""How soon a change of a job's training Job or pod is looked at (at most the poll interval): long enough to
take a burst of them (the Job, then each pod's scheduling, start and end) in one pass, short enough that
`Running` shows within seconds."""
MIN_LOOK_SECONDS = 1.0
"""No job is looked at again sooner than this after a pass (a backoff about to run out)."""
TERMINAL = {p.value for p in TERMINAL_PHASES}
Poster = Callable[[Mapping[str, Any], str, str, str], None]
"""Posts an Event about a FineTuneJob: (object, type, reason, message) (`cluster.events.EventPoster.post`)."""
SUSPENDED = Phase.SUSPENDED.value


def _unhandled(status: Mapping[str, Any], meta: Mapping[str, Any]) -> bool:
    """Whether this generation of the spec has not been reconciled yet (a new job, a spec edit)."""
    return status.get("observedGeneration") != meta.get("generation")


def _active(status: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> bool:
    """Whether the job needs looking at without being woken: not a terminal one, nor one suspended before
    any run (it waits for a spec edit, which its watch event shows at once; nothing else can move it), unless
    its current generation is still unhandled (a pass that could not write its status)."""
    if meta is not None and _unhandled(status, meta):
        return True
    phase = status.get("phase")
    if phase == SUSPENDED and not status.get("backendRef"):
        return False
    return phase not in TERMINAL


def next_look(
    status: Mapping[str, Any], meta: Mapping[str, Any], memory: JobMemory, poll_seconds: float
) -> float | None:
    """Seconds until the job's next look after a pass left it with `status`; None: only an event moves it."""
    if not _active(status, meta):
        return None
    backoff = memory.backoff
    if backoff is not None and backoff.generation == meta.get("generation"):
        return max(backoff.not_before - time.monotonic(), MIN_LOOK_SECONDS)
    return max(memory.rest or poll_seconds, MIN_LOOK_SECONDS)


@dataclass
class WatchedJob:
    """A FineTuneJob as its last watch event showed it, and what the operator keeps about it."""

    body: kopf.Body
    memory: JobMemory = field(default_factory=JobMemory)


class WatchedJobs:
    """The FineTuneJobs the operator watches, by UID, and the queue of their next looks (one pass at a time
    per job, on the queue's worker threads; see `lifecycle.workqueue`)."""

    def __init__(
        self,
        deps: Deps,
        workers: int,
        post: Poster | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.deps = deps
        self.post = post
        self.jobs: dict[str, WatchedJob] = {}
        # Read from the configuration the operator started with (never at import: tests set it later).
        self.poll_seconds = deps.config.poll_interval_seconds
        self.wake_seconds = min(self.poll_seconds, WAKE_SECONDS)
        self.queue = WorkQueue(self.look, workers=workers, retry_seconds=self.poll_seconds, clock=clock)

    def seen(self, body: kopf.Body) -> None:
        """A watch event of a FineTuneJob (not its deletion): keep its body; look now at a generation not
        handled yet, and at a job first seen (the operator started) after a poll interval if it is active.
        The status the operator writes carries `observedGeneration`, so its own writes wake nothing."""
        meta, status = body["metadata"], body.get("status") or {}
        uid = meta["uid"]
        known = self.jobs.get(uid)
        if known is None:
            self.jobs[uid] = WatchedJob(body)
        else:
            known.body = body
        if meta.get("deletionTimestamp"):
            self.queue.forget(uid)  # the deletion handler's, if the job holds the finalizer
        elif _unhandled(status, meta):
            self.queue.add(uid)
        elif known is None and _active(status, meta):
            self.queue.add(uid, self.poll_seconds)

    def gone(self, body: Mapping[str, Any]) -> None:
        """The job is deleted: forget it, and its series in the metrics."""
        meta = body["metadata"]
        self.queue.forget(meta["uid"])
        self.jobs.pop(meta["uid"], None)
        self.deps.metrics.remove_job(meta["namespace"], meta["name"])
        phase = (body.get("status") or {}).get("phase")
        self.deps.metrics.job_phase_changed(f"{meta['namespace']}/{meta['name']}", phase, None)

    def wake(self, uid: str) -> None:
        """Its training Job or a pod changed: look soon (a burst of changes makes one look)."""
        if uid in self.jobs:
            self.queue.add(uid, self.wake_seconds)

    def say(self, body: Mapping[str, Any], events: list[EventRecord]) -> None:
        """Post a pass's Events (with no poster, as in tests of the passes alone, only log them)."""
        for event in events:
            if self.post is not None:
                self.post(body, event.type, event.reason, event.message)
            level = logging.WARNING if event.type == "Warning" else logging.INFO
            log.log(level, "[%s] %s: %s", _name(body), event.reason, event.message)

    def memory(self, uid: str) -> JobMemory:
        known = self.jobs.get(uid)
        return known.memory if known is not None else JobMemory()

    def look(self, uid: str) -> float | None:
        """One pass over the job (a queue worker's): returns the seconds until its next look."""
        known = self.jobs.get(uid)
        if known is None:
            return None
        try:
            events, looked = _apply(known.body, self.deps, known.memory)
        except JobGone:
            self.gone(known.body)  # its DELETED event was missed (a watch restarted from a new listing)
            return None
        except RetryLater as err:
            log.warning("[%s] %s; looking again in %.0fs", _name(known.body), err.message, err.delay)
            return max(err.delay, MIN_LOOK_SECONDS)
        except SpecError as err:
            log.error(
                "[%s] %s: %s; looking again in %.0fs",
                _name(known.body),
                err.reason,
                err.message,
                self.poll_seconds,
            )
            return self.poll_seconds
        self.say(known.body, events)
        if looked is None:
            return None
        status, meta = looked
        return next_look(status, meta, known.memory, self.poll_seconds)


def _name(body: Mapping[str, Any]) -> str:
    return f"{body['metadata'].get('namespace')}/{body['metadata'].get('name')}"


def _apply(
    body: kopf.Body, deps: Deps, memory: JobMemory
) -> tuple[list[EventRecord], tuple[dict[str, Any], dict[str, Any]] | None]:
    """One pass over the job under its lock: its Events, and its status and metadata after the pass (None
    when the job is gone or being deleted)."""
    with memory.lock:
        return _pass(body, deps, memory)


def _pass(
    body: kopf.Body, deps: Deps, memory: JobMemory
) -> tuple[list[EventRecord], tuple[dict[str, Any], dict[str, Any]] | None]:
    meta = body["metadata"]
    # Under the job's lock, a pass never acts on a stale status: the watch's body will do when it holds this
    # process's last read or write (`JobMemory.current`), else read afresh.
    if memory.current(body):
        fresh: dict[str, Any] | None = dict(body)
    else:
        fresh = deps.status_writer.read(meta["namespace"], meta["name"])
    if fresh is None:
        raise JobGone(f"{meta['namespace']}/{meta['name']}")
    if fresh["metadata"].get("deletionTimestamp"):
        return [], None
    memory.seen(fresh["metadata"].get("resourceVersion"))
    try:
        job = FineTuneJob.from_body(fresh)
    except ValidationError as err:
        # Admission let through what the models refuse: say which field, instead of retrying for ever.
        outcome = reject_malformed(fresh, err)
        old = fresh.get("status") or {}
        new = outcome.status.wire()
        memory.seen(deps.status_writer.patch_status(meta["namespace"], meta["name"], old, new))
        return outcome.events, (new, fresh["metadata"])
    with deps.metrics.time_reconcile():
        outcome = reconcile(job, deps, memory)
    new = outcome.status.wire()
    memory.seen(
        deps.status_writer.patch_status(job.metadata.namespace, job.metadata.name, job.status.wire(), new)
    )
    return outcome.events, (new, fresh["metadata"])


@kopf.on.event(*RESOURCE)
async def on_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Every watch event of a FineTuneJob: keep its body and plan its next look (`WatchedJobs.seen`).

    A watch-event handler on kopf's event loop, not kopf's create/update/resume handlers: those need kopf's
    copy of the last handled spec (the `last-handled-configuration` annotation: one more API write per job and
    per edit) and its progress annotations, while the phase machine is level-based and
    `status.observedGeneration` already says which spec it has handled. Passes run on the queue's threads.
    """
    watched: WatchedJobs = memo.jobs
    if type == "DELETED":
        watched.gone(body)
    else:
        watched.seen(body)


def _holds_finalizer(meta: kopf.Meta, **_: Any) -> bool:
    """Only jobs that hold the operator's finalizer (work only the operator can cancel) get a deletion
    handler. For every other job kopf adds no finalizer, and its deletion waits for nobody: the garbage
    collector takes its Job, Secret and Service (ownerReferences)."""
    return FINALIZER in (meta.get("finalizers") or ())


# Deletions run on threads of their own: passes blocked on a slow Hub (a burst of new jobs validating, a model's
# metadata) can hold every one of the queue's threads, and must not hold up another job's deletion.
DELETION_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ftjob-delete")


@kopf.on.delete(*RESOURCE, when=_holds_finalizer)
async def on_delete(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Cancel the backend work, then let the FineTuneJob go (a vanished backend never blocks deletion)."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(DELETION_THREADS, partial(_delete, body, memo, logger))


def _delete(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger) -> None:
    """Under the job's lock, from a body that holds the last status written (read afresh when the watch's is
    older): a pass that began before the deletion may have submitted work by now, and that work must be
    cancelled too.
    """
    deps: Deps = memo.deps
    watched: WatchedJobs = memo.jobs
    memory = watched.memory(body["metadata"]["uid"])
    with memory.lock:
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
