"""Domain errors mapped onto kopf, in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import kopf

from finetune_operator.errors import RetryLater, SpecError


@contextmanager
def kopf_errors() -> Iterator[None]:
    """SpecError → PermanentError (no retry); RetryLater → TemporaryError(delay)."""
    try:
        yield
    except SpecError as err:
        raise kopf.PermanentError(f"{err.reason}: {err.message}") from None
    except RetryLater as err:
        raise kopf.TemporaryError(err.message, delay=err.delay) from None
