"""Fault injection: make the next N matching requests fail, stall, or cut a log stream short.

Rules are matched in the order they were added; each fires ``times`` times, then is spent. A rule matches when
its regex ``search``-es the request path (decoded, without the query) and its method, if given, equals the
request's. ``hits`` counts how often each rule fired, so a test can prove the fault was actually exercised.
A rule with ``lose_response`` serves the request first and then answers its failure instead: the Hub did the
work (created the job, made the commit), the client saw a 5xx, as when a proxy or the network drops the answer.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class FaultRule:
    """One injected fault."""

    pattern: re.Pattern[str]
    """Regex searched in the request path."""
    times: int
    """How many more requests it applies to."""
    status: int | None = None
    """Answer with this status instead of serving the request."""
    retry_after: int | None = None
    """``Retry-After`` header (seconds) sent with ``status``."""
    ratelimit_reset: int | None = None
    """Seconds until the rate-limit window resets, sent as the Hub's ``RateLimit: "api";r=0;t=N`` header."""
    delay_s: float = 0.0
    """Sleep before serving (or failing) the request."""
    method: str | None = None
    """Only this HTTP method."""
    lose_response: bool = False
    """Serve the request, then answer ``status`` in place of its response."""
    hits: int = 0
    """How many requests it fired on so far."""


@dataclass
class LogFault:
    """A fault of the next job log stream(s): the first event late, or the stream cut without a clean end."""

    times: int
    job_id: str | None = None
    after_lines: int | None = None
    """Abort the connection after this many events."""
    first_event_delay_s: float = 0.0
    """Send the headers at once, the first event only after this long (the Hub's log backend lagging)."""
    hits: int = 0


LogDrop = LogFault  # the name older tests know


@dataclass
class FaultInjector:
    """Fault rules of one stand-in; thread-safe, editable while the server runs."""

    _rules: list[FaultRule] = field(default_factory=list)
    _log_faults: list[LogFault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        path_regex: str,
        *,
        times: int = 1,
        status: int | None = None,
        retry_after: int | None = None,
        delay_s: float = 0.0,
        method: str | None = None,
        lose_response: bool = False,
        ratelimit_reset: int | None = None,
    ) -> FaultRule:
        """Add a rule for the next ``times`` requests whose path matches ``path_regex``.

        Parameters
        ----------
        path_regex : str
            Regex searched in the request path, e.g. ``r"/preupload/"`` or ``r"^/api/jobs/"``.
        times : int
            Number of requests it applies to.
        status : int, optional
            Fail with this HTTP status (429, 500, 503, ...) instead of serving.
        retry_after : int, optional
            Seconds sent as ``Retry-After`` with the failure.
        delay_s : float
            Sleep this long first (a slow Hub; combine with a client timeout to get a timeout).
        method : str, optional
            Only requests with this method (``GET``, ``POST``, ...).
        lose_response : bool
            Serve the request first, then answer ``status`` instead of its response.
        ratelimit_reset : int, optional
            Seconds sent as the reset time ``t`` of the Hub's ``RateLimit`` header with the failure.

        Returns
        -------
        FaultRule
            The rule; its ``hits`` tells how often it fired.
        """
        rule = FaultRule(
            pattern=re.compile(path_regex),
            times=times,
            status=status,
            retry_after=retry_after,
            delay_s=delay_s,
            method=method.upper() if method else None,
            lose_response=lose_response,
            ratelimit_reset=ratelimit_reset,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def lose_response(
        self, path_regex: str, *, status: int = 502, method: str | None = None, times: int = 1
    ) -> FaultRule:
        """Serve the next ``times`` matching requests, then answer ``status`` instead of their responses."""
        return self.add(path_regex, times=times, status=status, method=method, lose_response=True)

    def rate_limit(
        self, path_regex: str, *, times: int = 1, retry_after: int | None = 0, reset: int | None = None
    ) -> FaultRule:
        """Answer 429 to the next ``times`` matching requests, with ``Retry-After`` (unless None) and, when
        ``reset`` is given, the Hub's ``RateLimit: "api";r=0;t={reset}`` and ``RateLimit-Policy`` headers."""
        return self.add(path_regex, times=times, status=429, retry_after=retry_after, ratelimit_reset=reset)

    def server_error(self, path_regex: str, *, status: int = 503, times: int = 1) -> FaultRule:
        """Answer a 5xx to the next ``times`` matching requests."""
        return self.add(path_regex, times=times, status=status)

    def delay(self, path_regex: str, seconds: float, *, times: int = 1) -> FaultRule:
        """Delay the next ``times`` matching requests by ``seconds``."""
        return self.add(path_regex, times=times, delay_s=seconds)

    def drop_log_stream(self, after_lines: int, *, times: int = 1, job_id: str | None = None) -> LogFault:
        """Abort the next ``times`` job log streams (of ``job_id``, or any) after ``after_lines`` events."""
        return self._log_fault(LogFault(times=times, job_id=job_id, after_lines=after_lines))

    def lag_log_stream(self, seconds: float, *, times: int = 1, job_id: str | None = None) -> LogFault:
        """Hold back the first event of the next ``times`` job log streams for ``seconds``."""
        return self._log_fault(LogFault(times=times, job_id=job_id, first_event_delay_s=seconds))

    def _log_fault(self, fault: LogFault) -> LogFault:
        with self._lock:
            self._log_faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()
            self._log_faults.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """Consume and return the first live rule matching the request, if any."""
        with self._lock:
            for rule in self._rules:
                if rule.times <= 0 or (rule.method and rule.method != method):
                    continue
                if rule.pattern.search(path):
                    rule.times -= 1
                    rule.hits += 1
                    return rule
        return None

    def take_log_fault(self, job_id: str) -> LogFault | None:
        """Consume the first live log-stream fault for ``job_id``, if any."""
        with self._lock:
            for fault in self._log_faults:
                if fault.times > 0 and fault.job_id in (None, job_id):
                    fault.times -= 1
                    fault.hits += 1
                    return fault
        return None


class FaultMiddleware:
    """ASGI middleware applying :class:`FaultInjector` rules before the app sees the request."""

    def __init__(self, app: ASGIApp, faults: FaultInjector) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = self.faults.take(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        if rule.delay_s:
            await asyncio.sleep(rule.delay_s)
        if rule.status is None:
            await self.app(scope, receive, send)
            return
        if rule.lose_response:
            await self.app(scope, receive, _discard)
        else:
            await _drain(receive)
        body = json.dumps({"error": f"Injected fault: HTTP {rule.status}"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if rule.retry_after is not None:
            headers.append((b"retry-after", str(rule.retry_after).encode()))
        if rule.ratelimit_reset is not None:  # the IETF draft's headers, as the Hub sends them
            headers.append((b"ratelimit", f'"api";r=0;t={rule.ratelimit_reset}'.encode()))
            headers.append((b"ratelimit-policy", b'"fixed window";"api";q=500;w=300'))
        await send({"type": "http.response.start", "status": rule.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _discard(message: Message) -> None:
    """Swallow the app's own response (a rule with ``lose_response`` answers in its place)."""


async def _drain(receive: Receive) -> None:
    """Read the request body so the connection stays usable for keep-alive."""
    while True:
        message: Message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
