"""The one interface every backend implements: submit, find existing, poll, stream logs, cancel, link.

A handle on backend work (`WorkRef`) is the very `status.backendRef` the FineTuneJob stores.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from finetune_operator.api.status import BackendRef as WorkRef
from finetune_training.plan import TrainingPlan

if TYPE_CHECKING:
    from finetune_operator.cluster.watched import WatchedWork

__all__ = ["TERMINAL_STATES", "Backend", "JobTarget", "LogCursor", "WorkRef", "WorkState", "WorkStatus"]


class WorkState(StrEnum):
    """Backend work state, mapped from each backend's own stages."""

    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


TERMINAL_STATES = frozenset({WorkState.SUCCEEDED, WorkState.FAILED, WorkState.CANCELLED})


class JobTarget(BaseModel):
    """Identity of the FineTuneJob whose work a backend carries, and the credentials it may use."""

    namespace: str
    name: str
    uid: str
    """The FineTuneJob's UID: backend identity derives from it, so a restart finds the same work."""
    token_secret_name: str | None = None
    token_secret_key: str = "token"
    attempt: int = 1
    """Which attempt's work to find or submit (1, 2, …): each attempt is separate backend work."""
    token: str | None = None
    """The token value, for backends outside the cluster (HF Jobs, Local). Never logged or stored."""
    events_key: str | None = None
    """The attempt's event-signing key, handed to the run as a secret (`FTJOB_EVENTS_KEY`). Never
    logged or stored."""
    queue: str | None = None
    """Kueue LocalQueue the in-cluster work waits in for quota (`spec.queue`, else the installation's
    default); None: no queueing, the work starts as soon as it is created."""


class WorkStatus(BaseModel):
    """What a poll observed."""

    state: WorkState
    message: str = ""
    reason: str = ""
    started_at: datetime | None = None
    """When the work began running, by the backend's own record (what it bills from)."""
    ended_at: datetime | None = None
    restarts: int = 0
    """Runs that failed and were restarted by the backend itself (a Job's failed pods), so far."""
    preempted: bool = False
    """The work had started and a queue took its hardware back (Kueue's preemption): it waits to be
    admitted again, and resumes from its last checkpoint then."""


@dataclass
class LogCursor:
    """Where the monitor's last read of one attempt's log ended: the next read yields only the lines after it.

    The monitor keeps one per job and attempt (`work_id`), in memory; the backend advances its own fields as
    it yields lines, so lines not yet yielded are read again. A new cursor (an operator that restarted) reads
    the log from its beginning, and the progress tracker skips the events it has already seen.
    """

    work_id: str
    """The work (`WorkRef.id`) whose log this is."""
    lines: int = 0
    """HF Jobs: lines of the log consumed (its API reads a log only whole, or its last N lines)."""
    offset: int = 0
    """Local: bytes of `train.log` consumed."""
    pod: str | None = None
    """Kubernetes: the pod being read (a Job that replaced a failed pod is read on into the new one)."""
    time_ns: int | None = None
    """Kubernetes: the kubelet's timestamp of the newest line consumed."""
    same: int = 0
    """Kubernetes: lines consumed that carry exactly `time_ns`."""
    read_at: float | None = None
    """Kubernetes: `time.monotonic()` when the last read consumed whole began (the next read's window)."""


class Backend(Protocol):
    """What the reconcile loop (and `ftjob logs`) needs from a backend. Every method is idempotent.

    What differs between backends lives here, as an attribute or a method, so that nothing outside a
    backend's module branches on which one it is (`registry.py` lists them).
    """

    kind: str
    """The `status.backendRef.kind` of its work (`HFJob`, `Job`, `Process`)."""
    needs_token: bool
    """Whether find/poll/logs/cancel need the user's token (work outside the cluster's own API)."""
    retries_itself: bool
    """Whether the backend retries a failed run on its own (a batch/v1 Job's `backoffLimit`); when not,
    the operator resubmits infrastructure failures as new attempts."""
    collected_with_job: bool
    """Whether Kubernetes' garbage collector removes its work with the FineTuneJob (ownerReferences), so
    deleting a job needs no finalizer; when not, the operator puts its finalizer on a job before submitting
    and cancels the work when the job is deleted."""

    @property
    def watched(self) -> bool:
        """Whether changes of its work are pushed to the operator (the watches of `watch_from`), so its
        running work is looked at rarely; False for work outside the cluster."""

    def watch_from(self, seen: WatchedWork) -> None:
        """Read its work from the operator's watches (`seen`) instead of the API; a no-op for a backend
        whose work Kubernetes does not hold."""

    def find(self, target: JobTarget) -> WorkRef | None:
        """Existing work for this FineTuneJob's `target.attempt` (by UID and attempt), so nothing is
        submitted twice."""

    def submit(self, target: JobTarget, plan: TrainingPlan, timeout_seconds: int) -> WorkRef:
        """Start the work. Callers call :meth:`find` first."""

    def poll(self, target: JobTarget, ref: WorkRef) -> WorkStatus:
        """Current state. Work that is gone reads as FAILED with reason `BackendWorkLost`."""

    def logs(
        self,
        target: JobTarget,
        ref: WorkRef,
        *,
        follow: bool = False,
        tail: int | None = None,
        cursor: LogCursor | None = None,
    ) -> Iterator[str]:
        """Log lines (the runtime's JSON progress lines among them); `tail`: only the last N lines.

        Without `follow` a read returns promptly with what is there now, even while the job runs. With
        `cursor` (not with `follow`): only the lines after it, from the log's beginning for a new one (`tail`
        is then ignored), advancing it as they are yielded.
        """

    def cancel(self, target: JobTarget, ref: WorkRef) -> None:
        """Stop the work; no error when it is already gone."""

    def link(self, ref: WorkRef) -> str | None:
        """Where a person can look at the work (said in the `Submitted` message), or None."""
