"""Row lengths in tokens: the model's tokenizer when it can be had, else characters / 4 (flagged).

transformers is imported only here and only when a tokenizer is asked for, so the operator and
`ftjob validate` stay light.
"""

from __future__ import annotations

import math
from typing import Any

from finetune_operator.validation.report import LengthStats

CHARS_PER_TOKEN = 4.0
"""A common rule of thumb for English BPE tokenizers."""


def _turns_text(turns: Any) -> str:
    if isinstance(turns, str):
        return turns
    if isinstance(turns, list):
        out = []
        for t in turns:
            if isinstance(t, dict):
                content = t.get("content")
                out.append(content if isinstance(content, str) else "")
                if t.get("tool_calls"):
                    out.append(str(t["tool_calls"]))
            elif isinstance(t, str):
                out.append(t)
        return "\n".join(out)
    return ""


def row_parts(row: dict[str, Any]) -> list[Any]:
    """What the trainer tokenises of a TRL-format row: conversation parts or strings, in order."""
    if "chosen" in row and "rejected" in row:
        longer = max((row["chosen"], row["rejected"]), key=lambda v: len(_turns_text(v)))
        return [row.get("prompt"), longer] if "prompt" in row else [longer]
    if "messages" in row:
        return [row["messages"]]
    if "prompt" in row:
        return [row["prompt"], row.get("completion")]
    if "text" in row:
        return [row["text"]]
    return [v for v in row.values() if isinstance(v, str | list)]


def row_text(row: dict[str, Any]) -> str:
    """All the text of a row, as plain text."""
    return "\n".join(_turns_text(p) for p in row_parts(row) if p is not None)


def load_tokenizer(name: str) -> tuple[Any | None, str | None]:
    """AutoTokenizer for ``name`` (local folder or Hub id), or (None, why not)."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        return None, "transformers is not installed"
    try:
        return AutoTokenizer.from_pretrained(name), None
    except Exception as exc:  # a missing, gated or offline tokenizer must not fail the validation
        first = str(exc).strip().splitlines()
        return None, f"tokenizer `{name}` could not be loaded ({first[0] if first else type(exc).__name__})"


def _conversation(parts: list[Any]) -> list[dict[str, Any]] | None:
    turns: list[dict[str, Any]] = []
    for p in parts:
        if not isinstance(p, list) or not all(isinstance(t, dict) for t in p):
            return None
        turns.extend(p)
    return turns


def count_tokens(rows: list[dict[str, Any]], tokenizer: Any) -> list[int]:
    """Token counts with a real tokenizer (the chat template for conversations, when it has one)."""
    texts = []
    for row in rows:
        parts = [p for p in row_parts(row) if p is not None]
        turns = _conversation(parts)
        text = None
        if turns is not None and getattr(tokenizer, "chat_template", None):
            try:
                text = tokenizer.apply_chat_template(turns, tokenize=False)
            except Exception:  # a template that rejects these turns: count the plain text instead
                text = None
        texts.append(text if isinstance(text, str) else row_text(row))
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [len(ids) for ids in encoded]


def length_stats(rows: list[dict[str, Any]], max_length: int, tokenizer: str | None) -> LengthStats:
    """Length statistics of ``rows`` (TRL format) against ``max_length``.

    Parameters
    ----------
    rows
        Sampled rows, mapped into TRL's format.
    max_length
        The job's `maxLength` in tokens.
    tokenizer
        A tokenizer to load (local folder or Hub id); None to estimate.

    Returns
    -------
    LengthStats
    """
    note = None
    counts: list[int] | None = None
    if tokenizer:
        tok, note = load_tokenizer(tokenizer)
        if tok is not None:
            counts = count_tokens(rows, tok)
    estimated = counts is None
    if counts is None:
        counts = [math.ceil(len(row_text(r)) / CHARS_PER_TOKEN) for r in rows]
    ordered = sorted(counts) or [0]

    def pct(p: float) -> int:
        return ordered[min(len(ordered) - 1, int(p * (len(ordered) - 1) + 0.5))]

    return LengthStats(
        max_length=max_length,
        tokenizer=None if estimated else tokenizer,
        estimated=estimated,
        mean=round(sum(ordered) / len(ordered), 1),
        p50=pct(0.5),
        p95=pct(0.95),
        max=ordered[-1],
        over_max_length=round(sum(1 for c in counts if c > max_length) / max(1, len(counts)), 4),
        note=note,
    )
