"""A delayed work queue of FineTuneJob UIDs: when each job is looked at next, and by which thread.

What controller-runtime's work queue (`Result{RequeueAfter: …}`) is to a Go controller, in place of a kopf
timer per object: kopf's timers need a finalizer on every object (`kopf.on` registers them with
`requires_finalizer=True`, and only a `deletionTimestamp` stops them), so each job would cost a finalizer
write on creation and another on deletion, and its deletion would wait for the operator. One queue needs
neither: a job's next look is a time in a heap, and waiting jobs cost nothing.

- At most one pass runs per key at a time; a key added while its pass runs is looked at again after it.
- A key added twice is looked at once, at the earlier of the two times.
- The handler returns the delay until the key's next look (None: no look planned; a watch event or a spec
  edit adds it again).
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Handler = Callable[[str], float | None]
"""Look at one key; returns the delay in seconds until its next look, or None."""


class WorkQueue:
    """Worker threads that run `handle(key)` for each key when it is due (see the module docstring)."""

    def __init__(
        self,
        handle: Handler,
        *,
        workers: int,
        retry_seconds: float,
        name: str = "ftjob-pass",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._handle = handle
        self._workers = workers
        self._retry_seconds = retry_seconds
        self._name = name
        self._clock = clock
        self._cond = threading.Condition()
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, int, str]] = []  # entries whose time differs from `_due` are stale
        self._order = itertools.count()
        self._running: set[str] = set()
        self._again: dict[str, float] = {}  # added while running: the earliest time asked for
        self._forgotten: set[str] = set()  # forgotten while running: no next look
        self._threads: list[threading.Thread] = []
        self._stopped = False

    # -- scheduling -----------------------------------------------------------------------------------------
    def add(self, key: str, delay: float = 0.0) -> None:
        """Look at `key` within `delay` seconds (or sooner, if it is due sooner already)."""
        due = self._clock() + max(delay, 0.0)
        with self._cond:
            if self._stopped:
                return
            if key in self._running:
                self._forgotten.discard(key)
                self._again[key] = min(self._again.get(key, math.inf), due)
                return
            self._schedule(key, due)

    def forget(self, key: str) -> None:
        """The object is gone: no next look (a pass running now finishes, and is not followed by another)."""
        with self._cond:
            self._due.pop(key, None)
            self._again.pop(key, None)
            if key in self._running:
                self._forgotten.add(key)

    def due_in(self, key: str) -> float | None:
        """Seconds until `key`'s next look (0 while it runs or is overdue); None when none is planned."""
        with self._cond:
            if key in self._running:
                return 0.0
            due = self._due.get(key)
        return None if due is None else max(due - self._clock(), 0.0)

    def __len__(self) -> int:
        """Keys with a next look planned."""
        with self._cond:
            return len(self._due)

    def _schedule(self, key: str, due: float) -> None:
        """Under the lock: `key` at `due`, unless it is due sooner already."""
        current = self._due.get(key)
        if current is not None and current <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._order), key))
        self._cond.notify()

    # -- workers --------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers, each in a copy of the caller's context (its logging and settings)."""
        with self._cond:
            self._stopped = False
        for number in range(self._workers):
            context = contextvars.copy_context()
            thread = threading.Thread(
                target=context.run, args=(self._work,), name=f"{self._name}-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """No new passes; wait up to `timeout` for the running ones."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        self._threads = []

    def _next(self) -> str | None:
        """The next due key, marked running; None once stopped."""
        with self._cond:
            while not self._stopped:
                if not self._heap:
                    self._cond.wait()
                    continue
                due, _, key = self._heap[0]
                if self._due.get(key) != due:
                    heapq.heappop(self._heap)  # rescheduled sooner, or forgotten
                    continue
                wait = due - self._clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                del self._due[key]
                self._running.add(key)
                return key
            return None

    def _work(self) -> None:
        while (key := self._next()) is not None:
            try:
                delay = self._handle(key)
            except Exception:  # one job's failure must not stop the worker: look again later
                log.exception("a pass over %s failed; looking again in %.0fs", key, self._retry_seconds)
                delay = self._retry_seconds
            with self._cond:
                self._running.discard(key)
                again = self._again.pop(key, None)
                if key in self._forgotten:
                    self._forgotten.discard(key)
                    continue
                times = [
                    t for t in (again, None if delay is None else self._clock() + delay) if t is not None
                ]
                if times:
                    self._schedule(key, min(times))
