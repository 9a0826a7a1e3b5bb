"""One dataset validated once for the jobs that ask the same question of it.

A thousand FineTuneJobs naming one dataset would otherwise each sample it from the Hub. The report is reused
for the same source (name, config, split, revision, mapping), method list, length limit, answer column and
endpoint, and the same token (by its hash: a job never sees a report made with someone else's access). Only
reports are kept, never errors, so a dataset published later is seen at the next check; entries live
`ttl_seconds` (a `main` revision may change) and at most `size` of them. Jobs asking a question while it is
being answered wait for that answer (report or error) instead of asking it again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from finetune_operator.validation.report import DatasetReport
from finetune_training.plan import DatasetSource


class ValidationCache:
    """A bounded, expiring memo in front of :func:`finetune_operator.validation.inspect_dataset`."""

    def __init__(
        self,
        validate: Callable[..., DatasetReport],
        *,
        size: int = 256,
        ttl_seconds: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._validate = validate
        self._size = size
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, DatasetReport]] = OrderedDict()
        self._lock = threading.Lock()
        self._running: dict[tuple[Any, ...], Future[DatasetReport]] = {}
        self.hits = 0
        self.misses = 0

    def __call__(
        self,
        source: DatasetSource,
        *,
        token: str | None = None,
        methods: Sequence[str] = (),
        **options: Any,
    ) -> DatasetReport:
        """The report for `source`, from the memo when the same question was answered lately."""
        token_key = hashlib.sha256(token.encode()).hexdigest() if token else None
        key = (source.model_dump_json(), token_key, tuple(methods), tuple(sorted(options.items())))
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] < self._ttl:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[1].model_copy(deep=True)
            running = self._running.get(key)
            first = running is None
            if running is None:
                running = self._running[key] = Future()
                self.misses += 1
            else:
                self.hits += 1
        if not first:
            # The same question is being answered right now (a burst of new jobs naming one dataset): wait for
            # that answer, report or error, instead of sampling the dataset again beside it.
            return running.result().model_copy(deep=True)
        try:
            report = self._validate(source, token=token, methods=list(methods), **options)
        except BaseException as exc:
            with self._lock:
                del self._running[key]
            running.set_exception(exc)
            raise
        with self._lock:
            del self._running[key]
            self._entries[key] = (now, report)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        running.set_result(report)
        return report.model_copy(deep=True)
