"""Mapping of Hugging Face Hub client errors onto the domain's errors (user mistake vs transient)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from finetune_operator.errors import RetryLater, SpecError
from finetune_training.events import commit_trailer

TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def hub_error(exc: Exception, what: str) -> SpecError | RetryLater:
    """The domain error for a failed Hub call; `what` says what was being done."""
    if isinstance(exc, (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError)):
        return SpecError("HubNotFound", f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        code = exc.response.status_code
        if code in TRANSIENT_STATUS:
            delay = retry_delay(exc.response.headers)
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
                f"{what}: HTTP {code}: {_server_message(exc)} (check the token's rights, the account's "
                "billing/quota, or pick another `hardware.flavor`)",
            )
        return SpecError("HubRequestRefused", f"{what}: HTTP {code}: {_server_message(exc)}")
    if isinstance(exc, (OSError, TimeoutError)) or "Timeout" in type(exc).__name__:
        return RetryLater(f"{what}: {type(exc).__name__}; retrying")
    return RetryLater(f"{what}: {type(exc).__name__}: {exc}")


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


def _server_message(exc: HfHubHTTPError) -> str:
    server = getattr(exc, "server_message", None)
    return (server or str(exc).splitlines()[0])[:300]


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
) -> Iterator[str]:
    """An HF Job's log lines (server-sent events); without `follow`, what is there now.

    The Jobs API has no "what is there now": a non-following stream ends only after a pause in the output,
    so a running job that logs steadily keeps it open until the job ends. Without `follow` the read stops
    once `budget_s` has passed (closing the stream); `tail` starts from the last N lines.
    """
    deadline = time.monotonic() + budget_s
    for line in api.fetch_job_logs(job_id=job_id, namespace=namespace, follow=follow, tail=tail):
        yield line.rstrip("\n")
        if not follow and time.monotonic() > deadline:
            return
