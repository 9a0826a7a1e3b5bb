"""Counts each backend's failed API calls in `finetune_operator_backend_api_errors_total{backend, kind}`.

One wrapper around any backend, so every call the reconcile loop makes (find, submit, poll, logs, cancel)
is counted the same way, whatever the backend. `kind` is bounded: `Transient` (a RetryLater: 5xx, 429,
timeouts), a SpecError's CamelCase reason (`Forbidden`, `TokenInvalid`, …), or an exception's class name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from finetune_operator.backends.base import Backend, JobTarget, LogCursor, WorkRef, WorkStatus
from finetune_operator.errors import RetryLater, SpecError
from finetune_operator.metrics import OperatorMetrics
from finetune_training.plan import TrainingPlan

if TYPE_CHECKING:
    from finetune_operator.cluster.watched import WatchedWork

TRANSIENT = "Transient"


def error_kind(exc: Exception) -> str:
    """The bounded `kind` label of a failed call."""
    if isinstance(exc, RetryLater):
        return TRANSIENT
    if isinstance(exc, SpecError):
        return exc.reason
    return type(exc).__name__


class MeteredBackend:
    """`inner`, with each failed call counted under `name` (the backend's `spec.backend` value)."""

    def __init__(self, inner: Backend, name: str, metrics: OperatorMetrics) -> None:
        self.inner = inner
        self.name = name
        self.metrics = metrics
        self.kind = inner.kind
        self.needs_token = inner.needs_token
        self.retries_itself = inner.retries_itself
        self.collected_with_job = inner.collected_with_job

    def __getattr__(self, attr: str) -> Any:
        # Anything else a backend offers (not part of the interface) passes through, uncounted.
        return getattr(self.inner, attr)

    @property
    def watched(self) -> bool:
        return self.inner.watched

    def watch_from(self, seen: WatchedWork) -> None:
        self.inner.watch_from(seen)  # no API call: nothing to count

    @contextmanager
    def _counted(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            self.metrics.backend_api_error(self.name, error_kind(exc))
            raise

    def find(self, target: JobTarget) -> WorkRef | None:
        with self._counted():
            return self.inner.find(target)

    def submit(self, target: JobTarget, plan: TrainingPlan, timeout_seconds: int) -> WorkRef:
        with self._counted():
            return self.inner.submit(target, plan, timeout_seconds)

    def poll(self, target: JobTarget, ref: WorkRef) -> WorkStatus:
        with self._counted():
            return self.inner.poll(target, ref)

    def logs(
        self,
        target: JobTarget,
        ref: WorkRef,
        *,
        follow: bool = False,
        tail: int | None = None,
        cursor: LogCursor | None = None,
    ) -> Iterator[str]:
        with self._counted():
            yield from self.inner.logs(target, ref, follow=follow, tail=tail, cursor=cursor)

    def cancel(self, target: JobTarget, ref: WorkRef) -> None:
        with self._counted():
            self.inner.cancel(target, ref)

    def link(self, ref: WorkRef) -> str | None:
        return self.inner.link(ref)  # no API call: nothing to count
