"""Mapping of Hugging Face Hub client errors onto the domain's errors (user mistake vs transient)."""

from __future__ import annotations

from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from finetune_operator.errors import RetryLater, SpecError

TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def hub_error(exc: Exception, what: str) -> SpecError | RetryLater:
    """The domain error for a failed Hub call; `what` says what was being done."""
    if isinstance(exc, (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError)):
        return SpecError("HubNotFound", f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        code = exc.response.status_code
        if code in TRANSIENT_STATUS:
            delay = float(exc.response.headers.get("Retry-After", 30) or 30)
            return RetryLater(f"{what}: HTTP {code} from the Hub; retrying", delay=min(delay, 300))
        if code == 401:
            return SpecError(
                "TokenInvalid",
                f"{what}: the Hub refused the token (HTTP 401): put a valid token in the Secret named by "
                "`spec.tokenSecretRef`",
            )
        if code in (402, 403):
            return SpecError(
                "HubForbidden",
                f"{what}: HTTP {code}: {_server_message(exc)} (check the token's rights, the account's "
                "billing/quota, or pick another `hardware.flavor`)",
            )
        return SpecError("HubRequestRefused", f"{what}: HTTP {code}: {_server_message(exc)}")
    if isinstance(exc, (OSError, TimeoutError)) or "Timeout" in type(exc).__name__:
        return RetryLater(f"{what}: {type(exc).__name__}; retrying")
    return RetryLater(f"{what}: {type(exc).__name__}: {exc}")


def _server_message(exc: HfHubHTTPError) -> str:
    server = getattr(exc, "server_message", None)
    return (server or str(exc).splitlines()[0])[:300]
