"""What a failed Hub call means: for a resume, only the Hub saying "not found" is "no checkpoint"; for the
operator, a rate limit waits as long as the Hub says and no credits is a reason of its own.

The errors are raised the way the client raises them: `hf_raise_for_status` on the Hub's own responses
(status and `X-Error-Code`), and the `LocalEntryNotFoundError` `hf_hub_download` raises when its HEAD call
failed and nothing is cached.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import httpx2
import pytest
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import hf_raise_for_status

from finetune_operator.errors import RetryLater, SpecError
from finetune_operator.hub import HubSubject, hub_error
from finetune_training.hubrepo import HubUnreadable, ReadFailure, read_failure, read_with_retries
from finetune_training.stop import StopRequest

REFS = "https://huggingface.co/api/models/tester/m/refs"
MARKER = "https://huggingface.co/tester/m/resolve/checkpoints/last-checkpoint/ftjob-checkpoint.json"


def _hub_error(status: int, url: str = MARKER, code: str | None = None, **headers: str) -> Exception:
    if code:
        headers["X-Error-Code"] = code
    response = httpx2.Response(status, headers=headers, request=httpx2.Request("GET", url))
    with pytest.raises(Exception) as caught:
        hf_raise_for_status(response)
    return caught.value


def _cannot_reach_hub() -> LocalEntryNotFoundError:
    """As `hf_hub_download` raises it after a failed HEAD with an empty cache (a subclass of EntryNotFound)."""
    try:
        raise _hub_error(503)
    except Exception as cause:
        try:
            raise LocalEntryNotFoundError("cannot find the requested files in the local cache") from cause
        except LocalEntryNotFoundError as exc:
            return exc


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_hub_error(404, REFS, "RepoNotFound"), ReadFailure.ABSENT),
        (_hub_error(401, REFS, "RepoNotFound"), ReadFailure.ABSENT),  # anonymous: missing or private
        (_hub_error(404, MARKER, "RevisionNotFound"), ReadFailure.ABSENT),
        (_hub_error(404, MARKER, "EntryNotFound"), ReadFailure.ABSENT),
        (_cannot_reach_hub(), ReadFailure.UNAVAILABLE),
        (_hub_error(503), ReadFailure.UNAVAILABLE),
        (_hub_error(500, REFS), ReadFailure.UNAVAILABLE),
        (_hub_error(429, REFS, **{"Retry-After": "3"}), ReadFailure.UNAVAILABLE),
        (httpx2.ConnectError("connection refused"), ReadFailure.UNAVAILABLE),
        (httpx2.ReadTimeout("timed out"), ReadFailure.UNAVAILABLE),
        (_hub_error(403, REFS), ReadFailure.FORBIDDEN),
        (_hub_error(403, MARKER, "GatedRepo"), ReadFailure.FORBIDDEN),
        (ValueError("not a Hub error"), None),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_only_a_not_found_answer_means_absent(error: Exception, expected: ReadFailure | None) -> None:
    assert read_failure(error) == expected


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"waited {seconds}s where no retry was due")


def _reads(*outcomes: object) -> tuple[list[int], Callable[[], object]]:
    calls: list[int] = []

    def read() -> object:
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return calls, read


def test_a_read_that_cannot_be_answered_now_is_retried_with_backoff() -> None:
    waits: list[float] = []
    calls, read = _reads(_cannot_reach_hub(), _hub_error(503, REFS), "marker")
    assert read_with_retries("x", read, backoff_seconds=1, sleep=waits.append) == "marker"
    assert len(calls) == 3 and waits == [1, 2]


def test_retry_after_is_honoured_when_longer_than_the_backoff() -> None:
    waits: list[float] = []
    _, read = _reads(_hub_error(429, REFS, **{"Retry-After": "7"}), "ok")
    read_with_retries("x", read, backoff_seconds=1, sleep=waits.append)
    assert waits == [7]


def test_absent_is_none_at_once() -> None:
    calls, read = _reads(_hub_error(404, REFS, "RepoNotFound"))
    assert read_with_retries("x", read, sleep=_no_sleep) is None
    assert len(calls) == 1


def test_a_hub_that_keeps_failing_is_unreadable_not_absent() -> None:
    calls, read = _reads(*[_hub_error(403, REFS)] * 3)
    with pytest.raises(HubUnreadable) as caught:
        read_with_retries("the checkpoint", read, attempts=3, backoff_seconds=0, sleep=lambda s: None)
    assert len(calls) == 3 and caught.value.failure == ReadFailure.FORBIDDEN
    assert "cannot read the checkpoint from the Hub (forbidden)" in str(caught.value)


def test_other_errors_are_not_retried() -> None:
    calls, read = _reads(KeyError("step"))
    with pytest.raises(KeyError):
        read_with_retries("x", read, sleep=_no_sleep)
    assert len(calls) == 1


def test_sigterm_is_recorded_not_fatal_and_the_handler_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest().installed() as stop:
        assert not stop.requested
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)  # `timeout` and a group kill deliver it more than once
        assert stop.requested and stop.agreed()
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_operator_waits_as_long_as_the_hubs_ratelimit_header_says() -> None:
    """The Hub sends `RateLimit: "api";r=0;t=55` with a 429: the retry waits for the reset, not 30 s."""
    error = hub_error(_hub_error(429, REFS, RateLimit='"api";r=0;t=55'), "listing HF Jobs")
    assert isinstance(error, RetryLater) and error.delay == 55
    error = hub_error(_hub_error(429, REFS, **{"Retry-After": "7"}), "listing HF Jobs")
    assert isinstance(error, RetryLater) and error.delay == 7


def test_no_credits_is_its_own_reason_and_the_job_waits_for_them() -> None:
    error = hub_error(_hub_error(402, "https://huggingface.co/api/jobs/tester"), "submitting the HF Job")
    assert isinstance(error, SpecError) and error.reason == "HubPaymentRequired" and error.fixable
    assert "credits" in error.message


MODEL = HubSubject("model", "tester/m", "main")
DATASET = HubSubject("dataset", "tester/d", None, token_given=False)


@pytest.mark.parametrize(
    ("error", "subject", "outcome"),
    [
        (_hub_error(404, REFS, "RepoNotFound"), MODEL, "ModelNotFound"),
        (_hub_error(404, REFS, "RepoNotFound"), DATASET, "DatasetNotFound"),
        (_hub_error(404, REFS, "RepoNotFound"), None, "HubNotFound"),
        (_hub_error(404, MARKER, "RevisionNotFound"), MODEL, "ModelNotFound"),
        (_hub_error(403, MARKER, "GatedRepo"), DATASET, "DatasetNotFound"),
        # The client reads a bare 401 as "missing or private"; a refused token says so in X-Error-Message.
        (_hub_error(401, REFS), MODEL, "ModelNotFound"),
        (
            _hub_error(401, REFS, **{"X-Error-Message": "Invalid credentials in Authorization header"}),
            MODEL,
            "TokenInvalid",
        ),
        (_hub_error(402), None, "HubPaymentRequired"),
        (_hub_error(403, REFS), MODEL, "HubForbidden"),
        (_hub_error(400, REFS), DATASET, "HubRequestRefused"),
        (_hub_error(503), MODEL, RetryLater),
        (_hub_error(520), DATASET, RetryLater),
        (_hub_error(408), None, RetryLater),
        (_hub_error(429, REFS, **{"RateLimit": '"api";r=0;t=55'}), MODEL, RetryLater),
        (_cannot_reach_hub(), MODEL, RetryLater),  # never "absent"
        (httpx2.ConnectError("connection refused"), DATASET, RetryLater),
        (OfflineModeIsEnabled("offline"), MODEL, "HubOffline"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_one_rule_per_hub_answer_for_every_subject(
    error: Exception, subject: HubSubject | None, outcome: str | type
) -> None:
    """The one mapping (`hub.hub_error`) that planning, validation, HF Jobs and push checks share."""
    mapped = hub_error(error, "reading", subject)
    if outcome is RetryLater:
        assert isinstance(mapped, RetryLater)
    else:
        assert isinstance(mapped, SpecError) and mapped.reason == outcome, mapped


def test_a_rate_limit_waits_as_the_hub_says() -> None:
    mapped = hub_error(_hub_error(429, REFS, **{"RateLimit": '"api";r=0;t=55'}), "reading", MODEL)
    assert isinstance(mapped, RetryLater) and mapped.delay == 55


def test_not_found_messages_name_the_field_and_the_token() -> None:
    missing = hub_error(_hub_error(404, REFS, "RepoNotFound"), "reading", DATASET)
    assert "`dataset.name`" in missing.message and "no token was given" in missing.message
    revision = hub_error(_hub_error(404, MARKER, "RevisionNotFound"), "reading", MODEL)
    assert "`model.revision`" in revision.message
