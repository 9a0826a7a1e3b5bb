"""The Hugging Face Hub as the operator sees it: one mapping of client errors onto the domain's (waiting,
failing or transient), pushes confirmed on the Hub, and HF Job log reading."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from finetune_operator.errors import RetryLater, SpecError
from finetune_training.events import commit_trailer

TRANSIENT_STATUS = frozenset({408, 425, 429})
"""With every 5xx: answers that mean "not now", asked again after the Hub's `RateLimit`/`Retry-After`."""
NOT_FOUND_REASONS = {"model": "ModelNotFound", "dataset": "DatasetNotFound"}
"""A missing repo is the subject's own reason (both wait: the repo may be created or shared later)."""


@dataclass(frozen=True)
class HubSubject:
    """What a Hub call was about, so one mapping can say it in the user's terms."""

    kind: str
    """`model`, `dataset`, or anything else (a job, a push): says what the spec field is."""
    repo: str
    revision: str | None = None
    token_given: bool = True

    @property
    def not_found_reason(self) -> str:
        return NOT_FOUND_REASONS.get(self.kind, "HubNotFound")

    def describe(self) -> str:
        return f"{self.kind} `{self.repo}`"

    def missing(self) -> str:
        field = f"`{self.kind}.name`" if self.kind in NOT_FOUND_REASONS else "the repo id"
        token = (
            "set `tokenSecretRef` (HF_TOKEN for `ftjob`) to a token that can read it"
            if self.token_given
            else "no token was given: set `tokenSecretRef` (HF_TOKEN for `ftjob`)"
        )
        return f"{self.describe()} does not exist on the Hub or is private: check {field}, or {token}"


def hub_error(exc: BaseException, what: str, subject: HubSubject | None = None) -> SpecError | RetryLater:
    """The one mapping of a failed Hub call onto the domain's errors; `what` says what was being done.

    One rule per answer: absent (repo, revision or file; gated too) → the subject's not-found reason;
    401 → `TokenInvalid`; 402 → `HubPaymentRequired`; 403 → `HubForbidden`; 408/425/429/5xx and transport
    errors → retry after the Hub's `RateLimit`/`Retry-After`; offline mode → `HubOffline`; any other 4xx
    → `HubRequestRefused`. `LocalEntryNotFoundError` (a download that could not ask the Hub) is judged by
    what it wraps, never as "absent". The not-found reasons and `HubOffline`, `TokenInvalid`,
    `HubForbidden` and `HubPaymentRequired` wait for a fix (`errors.WAITING_REASONS`).
    """
    if isinstance(exc, LocalEntryNotFoundError):
        cause = exc.__cause__
        if isinstance(cause, Exception) and not isinstance(cause, LocalEntryNotFoundError):
            return hub_error(cause, what, subject)
        return RetryLater(f"{what}: the Hub could not be reached; retrying")
    if isinstance(exc, OfflineModeIsEnabled):
        return SpecError(
            "HubOffline",
            f"{what}: the Hub is disabled here (HF_HUB_OFFLINE=1); unset it, or name a local folder "
            "(`ftjob plan` also takes the size by hand: `--offline-model-params`)",
        )
    if subject is not None and isinstance(exc, GatedRepoError):  # before its parent, RepositoryNotFoundError
        return SpecError(
            subject.not_found_reason,
            f"{subject.describe()} is gated: accept its conditions on the Hub with the account whose token "
            "`tokenSecretRef` names (or HF_TOKEN for `ftjob`)",
        )
    if subject is not None and isinstance(exc, RevisionNotFoundError):
        return SpecError(
            subject.not_found_reason,
            f"{subject.describe()} has no revision `{subject.revision}`: fix `{subject.kind}.revision`",
        )
    if subject is not None and isinstance(exc, RepositoryNotFoundError):
        return SpecError(subject.not_found_reason, subject.missing())
    if subject is not None and isinstance(exc, RemoteEntryNotFoundError):
        return SpecError(
            subject.not_found_reason,
            f"a file of {subject.describe()} is missing at revision `{subject.revision or 'main'}`: "
            f"{_first_line(exc)}",
        )
    if isinstance(
        exc, RepositoryNotFoundError | GatedRepoError | RevisionNotFoundError | RemoteEntryNotFoundError
    ):
        return SpecError("HubNotFound", f"{what}: {type(exc).__name__}: {_first_line(exc)}")
    code = _status(exc)
    if code is not None:
        headers = getattr(getattr(exc, "response", None), "headers", None) or {}
        if code in TRANSIENT_STATUS or code >= 500:
            delay = retry_delay(headers)
            return RetryLater(f"{what}: HTTP {code} from the Hub; retrying", delay=min(delay, 300))
        if code == 401:
            return SpecError(
                "TokenInvalid",
                f"{what}: the Hub refused the token (HTTP 401): put a valid token in the Secret named by "
                "`spec.tokenSecretRef`",
            )
        if code == 402:
            return SpecError(
                "HubPaymentRequired",
                f"{what}: HTTP 402: {_server_message(exc)} (the account running the job has no credits or "
                "payment method: add them in the Hub's billing settings; the job retries by itself)",
            )
        if code == 403:
            return SpecError(
                "HubForbidden",
                f"{what}: HTTP 403: {_server_message(exc)} (check the token's rights, the account's "
                "billing/quota, or pick another `hardware.flavor`)",
            )
        if code == 404 and subject is not None:
            return SpecError(subject.not_found_reason, subject.missing())
        return SpecError("HubRequestRefused", f"{what}: HTTP {code}: {_server_message(exc)}")
    if is_transport_error(exc):
        return RetryLater(f"{what}: {type(exc).__name__}; retrying")
    return RetryLater(f"{what}: {type(exc).__name__}: {_first_line(exc)}")


def is_hub_failure(exc: BaseException) -> bool:
    """Whether `exc` is something the Hub or the network did (not a bug in the caller)."""
    return isinstance(exc, HfHubHTTPError | OfflineModeIsEnabled | LocalEntryNotFoundError) or (
        _status(exc) is not None or is_transport_error(exc)
    )


@contextmanager
def hub_errors(what: str, subject: HubSubject | None = None) -> Iterator[None]:
    """Raise Hub failures inside the block as :func:`hub_error` maps them; anything else as it is."""
    try:
        yield
    except (SpecError, RetryLater):
        raise
    except Exception as exc:
        if not is_hub_failure(exc):
            raise
        raise hub_error(exc, what, subject) from exc


def is_transport_error(exc: BaseException) -> bool:
    """Connections, timeouts and their httpx/httpx2 kinds (named, so neither needs importing)."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"TransportError", "TimeoutException", "NetworkError"})


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a Hub error or of an httpx `HTTPStatusError` (file reads raise those)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


_RATELIMIT_RESET = re.compile(r"(?:^|;)\s*t\s*=\s*(\d+)")


def retry_delay(headers: Mapping[str, str], default: float = 30.0) -> float:
    """Seconds to wait before the next call: the Hub's `RateLimit` header (`"api";r=0;t=55`, the IETF
    draft's reset time `t`) or `Retry-After`, else `default`."""
    reset = _RATELIMIT_RESET.search(headers.get("RateLimit", "") or "")
    if reset:
        return max(float(reset.group(1)), 1.0)
    try:
        return float(headers.get("Retry-After") or default)
    except ValueError:  # an HTTP date: rare from the Hub; the default is safe
        return default


def _server_message(exc: BaseException) -> str:
    server = getattr(exc, "server_message", None)
    return (server or _first_line(exc))[:300]


WEIGHT_SUFFIXES = (".safetensors", ".bin")
"""A pushed model (full weights or a LoRA adapter) has at least one of these."""


def confirm_pushed(
    repo: str, *, job_uid: str, token: str | None, endpoint: str | None, suffixes: tuple[str, ...]
) -> list[str]:
    """The files with `suffixes` in `repo`, once the Hub shows a commit of this job there.

    The runtime's `published` event is only a claim read from a log that can end early or lag (or be
    printed by anything the run printed); the job's outcome is what the Hub holds. A Hub that cannot
    answer now is asked again (RetryLater); a repo that is missing, has no such files, or has no commit of
    this job is `ModelNotPushed`.
    """
    api = HfApi(endpoint=endpoint, token=token)
    what = f"confirming the push to `{repo}` on the Hub"
    try:
        info = api.model_info(repo)
        commits = api.list_repo_commits(repo)
    except Exception as exc:
        err = hub_error(exc, what)
        if isinstance(err, SpecError) and err.reason == "HubNotFound":
            raise SpecError(
                "ModelNotPushed", f"the run ended, but `{repo}` does not exist on the Hub"
            ) from None
        raise err from None
    files = [s.rfilename for s in info.siblings or [] if s.rfilename.endswith(suffixes)]
    if not files:
        raise SpecError(
            "ModelNotPushed", f"the run ended, but `{repo}` holds no {' or '.join(suffixes)} files"
        )
    trailer = commit_trailer(job_uid)
    if not any(trailer in (c.message or "") or trailer in (c.title or "") for c in commits):
        raise SpecError(
            "ModelNotPushed", f"the run ended, but no commit in `{repo}` comes from this job ({trailer})"
        )
    return files


def repo_url(repo: str, endpoint: str | None) -> str:
    """The browsable URL of a model repo."""
    return f"{(endpoint or constants.ENDPOINT).rstrip('/')}/{repo}"


LOG_READ_BUDGET_S = 5.0
"""How long a non-following read of a running HF Job's logs goes on before it stops."""


def hf_job_log_lines(
    api: HfApi,
    job_id: str,
    namespace: str | None,
    *,
    follow: bool = False,
    tail: int | None = None,
    budget_s: float = LOG_READ_BUDGET_S,
    skip: int = 0,
) -> Iterator[str]:
    """An HF Job's log lines (server-sent events); without `follow`, what is there now.

    The Jobs API has no "what is there now": a non-following stream ends only after a pause in the output,
    so a running job that logs steadily keeps it open until the job ends. Without `follow` the read stops
    once `budget_s` has passed (closing the stream); `tail` starts from the last N lines. `skip`: the first N
    lines are passed over (already read), and the budget starts after them.
    """
    deadline = time.monotonic() + budget_s
    for line in api.fetch_job_logs(job_id=job_id, namespace=namespace, follow=follow, tail=tail):
        if skip > 0:
            skip -= 1
            deadline = time.monotonic() + budget_s
            continue
        yield line.rstrip("\n")
        if not follow and time.monotonic() > deadline:
            return
