"""A pod's log read incrementally: each read returns only the lines after the cursor.

The Kubernetes API has no "lines after N": a read names a time instead. Each read asks for timestamped lines
(`timestamps=true`: the kubelet's RFC3339Nano time of each line) since a window that starts a few seconds
before the previous read began (`sinceSeconds`, measured on the operator's own monotonic clock, so a skew
between the operator's and the node's clocks does not matter, only their rates), then drops every line at
or before the newest one already consumed. Lines with the very same timestamp are told apart by how many of
them were consumed (the log keeps their order).

A fresh cursor reads the pod's whole log (an operator that restarted: the progress tracker skips the events
it has already seen). Each read is bounded (`limitBytes`); a read that hit the bound is followed by another
from where it ended, so a chatty run costs more bytes, never lost lines.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from finetune_operator.backends.base import LogCursor
from finetune_operator.cluster.rbac import api_error

OVERLAP_SECONDS = 10
"""How far before the previous read's start the next read's window begins: covers the time a request takes
to reach the kubelet (the kubelet measures `sinceSeconds` back from when it serves the read)."""
READ_LIMIT_BYTES = 8 * 1024 * 1024
"""The most one read returns; a read that hit it is followed by another from where it ended."""
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def stamp_ns(text: str) -> int | None:
    """An RFC 3339 time with up to nanoseconds (`2026-01-02T03:04:05.123456789Z`) in ns since the epoch."""
    found = _STAMP.match(text)
    if found is None:
        return None
    base, fraction, zone = found.groups()
    seconds = int(datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone)).timestamp())
    return seconds * 1_000_000_000 + int((fraction or "").ljust(9, "0"))


def read_since(
    core: client.CoreV1Api,
    namespace: str,
    pod: str,
    cursor: LogCursor,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    limit_bytes: int = READ_LIMIT_BYTES,
) -> Iterator[str]:
    """The lines of `pod`'s log after `cursor` (its `pod` must be `pod`), advancing it line by line.

    Lines not yet yielded when the caller stops are read again next time: the window moves on only once a
    read has been consumed whole.
    """
    while True:
        started = clock()
        options: dict[str, int | bool] = {"timestamps": True, "limit_bytes": limit_bytes}
        if cursor.read_at is not None:
            options["since_seconds"] = max(1, math.ceil(started - cursor.read_at) + OVERLAP_SECONDS)
        try:
            text: str = core.read_namespaced_pod_log(pod, namespace, **options)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status in (400, 404):  # container not started yet, or pod gone
                return
            raise api_error(exc, "get", "pods/log", namespace) from None
        full = len(text.encode()) >= limit_bytes
        lines = text.splitlines()
        if full and lines and not text.endswith("\n"):
            lines.pop()  # cut off by the limit: read again, whole, next time
        before = (cursor.time_ns, cursor.same)
        yield from _after(lines, cursor)
        if not full:
            cursor.read_at = started  # caught up: the next window starts just before this read
            return
        if cursor.time_ns is None or (cursor.time_ns, cursor.same) == before:
            # Nothing new within the bound: a run that logged more than `limit_bytes` within one overlap.
            # The window stays; the next pass tries again.
            return
        # Cut short by the bound: the next read starts at the newest line consumed (its age by the wall clock;
        # the overlap absorbs a clock skew up to OVERLAP_SECONDS, and lines read twice are dropped).
        cursor.read_at = clock() - max(0.0, wall() - cursor.time_ns / 1e9)


def _after(lines: list[str], cursor: LogCursor) -> Iterator[str]:
    at_newest = 0  # lines of this read stamped exactly `cursor.time_ns`
    for line in lines:
        stamp, _, content = line.partition(" ")
        ns = stamp_ns(stamp)
        if ns is None:  # not timestamped (a server that ignored `timestamps`): nothing to order by
            yield line
            continue
        if cursor.time_ns is not None and ns < cursor.time_ns:
            continue
        if ns == cursor.time_ns:
            at_newest += 1
            if at_newest <= cursor.same:
                continue
            cursor.same = at_newest
        else:
            cursor.time_ns, cursor.same, at_newest = ns, 1, 1
        yield content
