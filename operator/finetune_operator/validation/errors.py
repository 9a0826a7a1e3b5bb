"""Shorthands for the two dataset reasons, so every module words them the same way."""

from __future__ import annotations

from finetune_operator.errors import SpecError

DATASET_INVALID = "DatasetInvalid"
"""The data exists but cannot be read as rows (corrupt, truncated, empty, wrong shapes, enormous rows)."""
DATASET_NOT_FOUND = "DatasetNotFound"
"""The dataset, file, revision, config or split does not exist (or is private and no token was given)."""


def invalid(message: str) -> SpecError:
    """A `DatasetInvalid` error with ``message``."""
    return SpecError(DATASET_INVALID, message)


def not_found(message: str) -> SpecError:
    """A `DatasetNotFound` error with ``message``."""
    return SpecError(DATASET_NOT_FOUND, message)


def names(items: list[str] | tuple[str, ...] | set[str], limit: int = 20) -> str:
    """`a`, `b`, `c` (and N more): how messages list what exists."""
    listed = sorted(items)
    text = ", ".join(f"`{i}`" for i in listed[:limit])
    if len(listed) > limit:
        text += f" (and {len(listed) - limit} more)"
    return text or "none"
