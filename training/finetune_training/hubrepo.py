"""Hub repo helpers shared by checkpoint pushes and publishing, and what a failed Hub read means."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

import httpx2
from huggingface_hub import HfApi
from huggingface_hub.errors import (
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

READ_ATTEMPTS = 6
"""Tries of a Hub read that cannot be answered now, before giving up (about a minute with the backoff)."""
READ_BACKOFF_SECONDS = 2.0
"""The first wait between tries; it doubles each time, up to `READ_BACKOFF_MAX_SECONDS`."""
READ_BACKOFF_MAX_SECONDS = 30.0
BACKOFF_ENV = "FTJOB_HUB_READ_BACKOFF_SECONDS"
"""Overrides `READ_BACKOFF_SECONDS` (tests make it short)."""


def ensure_repo(api: HfApi, repo: str, private: bool, repo_type: str = "model") -> None:
    """Create `repo` unless it exists (checked first, so a re-run never depends on a 409's body)."""
    if not api.repo_exists(repo, repo_type=repo_type):
        api.create_repo(repo, private=private, repo_type=repo_type, exist_ok=True)


class ReadFailure(StrEnum):
    """What a failed Hub read says about the thing read."""

    ABSENT = "absent"
    """The Hub answered that the repo, the revision or the file does not exist."""
    UNAVAILABLE = "unavailable"
    """No answer now: connection, timeout, 5xx, 429, or a download that could not reach the Hub."""
    FORBIDDEN = "forbidden"
    """The Hub refused this token (401/403, gated, disabled): it may exist, and a fixed token may read it."""


def read_failure(exc: BaseException) -> ReadFailure | None:
    """Classify an exception raised by a Hub read; None when it is not a Hub error at all.

    Only an explicit "not found" from the Hub is `ABSENT`. `LocalEntryNotFoundError` is `UNAVAILABLE`
    although it subclasses `EntryNotFoundError`: `hf_hub_download` raises it when the HEAD call failed
    (connection, 5xx, 403) and the file is not in the local cache, so the file may well exist.
    """
    # Before the "not found" family: GatedRepoError subclasses RepositoryNotFoundError.
    if isinstance(exc, GatedRepoError | DisabledRepoError):
        return ReadFailure.FORBIDDEN
    if isinstance(exc, RepositoryNotFoundError | RevisionNotFoundError | RemoteEntryNotFoundError):
        return ReadFailure.ABSENT
    if isinstance(exc, LocalEntryNotFoundError):
        return ReadFailure.UNAVAILABLE
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        return ReadFailure.FORBIDDEN if status in (401, 403) else ReadFailure.UNAVAILABLE
    if isinstance(exc, httpx2.TransportError | ConnectionError | TimeoutError):
        return ReadFailure.UNAVAILABLE
    return None


def _retry_after(exc: BaseException) -> float | None:
    response = exc.response if isinstance(exc, HfHubHTTPError) else None
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class HubUnreadable(Exception):
    """A Hub read kept failing with something other than "absent"; `failure` says how."""

    def __init__(self, what: str, failure: ReadFailure, cause: BaseException) -> None:
        detail = _first_line(cause)
        if cause.__cause__ is not None:  # LocalEntryNotFoundError wraps what the HEAD call got
            detail += f" ({_first_line(cause.__cause__)})"
        super().__init__(f"cannot read {what} from the Hub ({failure.value}): {detail}")
        self.failure = failure


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_with_retries(
    what: str,
    read: Callable[[], T],
    *,
    attempts: int = READ_ATTEMPTS,
    backoff_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T | None:
    """Run `read`; None when the Hub says it is absent, retrying anything it cannot answer now.

    Parameters
    ----------
    what
        What is read, for logs and the error message.
    read
        One try of the read.
    attempts
        Tries in all before giving up.
    backoff_seconds
        The first wait (default `READ_BACKOFF_SECONDS`); doubled after each try (capped), or the server's
        `Retry-After` when longer.
    sleep
        How to wait (tests pass a fake).

    Raises
    ------
    HubUnreadable
        After `attempts` tries that were unavailable or forbidden.
    """
    delay = (
        backoff_seconds
        if backoff_seconds is not None
        else float(os.environ.get(BACKOFF_ENV, READ_BACKOFF_SECONDS))
    )
    for attempt in range(1, attempts + 1):
        try:
            return read()
        except Exception as exc:
            failure = read_failure(exc)
            if failure is None:
                raise
            if failure == ReadFailure.ABSENT:
                return None
            if attempt == attempts:
                raise HubUnreadable(what, failure, exc) from exc
            wait = min(max(delay, _retry_after(exc) or 0.0), READ_BACKOFF_MAX_SECONDS)
            log.warning(
                "cannot read %s (%s, try %d of %d); retrying in %.0fs", what, failure, attempt, attempts, wait
            )
            sleep(wait)
            delay = min(delay * 2, READ_BACKOFF_MAX_SECONDS)
    raise AssertionError("unreachable")  # pragma: no cover
