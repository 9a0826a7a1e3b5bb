"""Recognise the format a dataset is in, and the mapping that turns it into TRL's format.

Recognition looks at column names and at the shape of the sampled values (a list of {role, content}
turns, {from, value} turns, content given as parts, plain strings), never at one row alone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from finetune_training.plan import ColumnMapping, Conversion

SYNONYMS: dict[str, tuple[str, ...]] = {
    "prompt": ("prompt", "query", "question", "input", "instruction", "context", "problem", "source"),
    "completion": ("completion", "response", "output", "answer", "target", "reply", "solution"),
    "chosen": ("chosen", "chosen_response", "response_chosen", "preferred", "accepted", "better", "positive"),
    "rejected": ("rejected", "rejected_response", "response_rejected", "dispreferred", "worse", "negative"),
    "text": ("text", "content", "document", "body", "sentence", "passage"),
    "answer": (
        "answer",
        "solution",
        "final_answer",
        "ground_truth",
        "reference_answer",
        "gold",
        "target",
        "label",
    ),
}
"""Column names that commonly hold what TRL expects under the key's name (most likely first)."""


@dataclass(frozen=True)
class RowMapping:
    """A conversion and/or column renames (what `spec.dataset` accepts)."""

    conversion: Conversion | None = None
    columns: ColumnMapping | None = None

    @property
    def empty(self) -> bool:
        """True when the mapping changes nothing."""
        return self.conversion is None and (self.columns is None or not self.columns.renames())

    def plus(self, **renames: str) -> RowMapping:
        """This mapping with more renames (target=source)."""
        current = {} if self.columns is None else self.columns.model_dump(exclude_none=True)
        return RowMapping(self.conversion, ColumnMapping(**{**current, **renames}))

    def key(self) -> tuple[str, str]:
        """A hashable identity."""
        renames = {} if self.columns is None else self.columns.renames()
        cols = self.columns.model_dump_json(exclude_none=True) if self.columns is not None and renames else ""
        return (str(self.conversion or ""), cols)

    def describe(self) -> str:
        """`conversion: Alpaca, columns: {completion: chosen}` (or `no mapping`)."""
        parts = []
        if self.conversion is not None:
            parts.append(f"conversion: {self.conversion.value}")
        if self.columns is not None and self.columns.renames():
            pairs = ", ".join(f"{k}: {v}" for k, v in self.columns.model_dump(exclude_none=True).items())
            parts.append(f"columns: {{{pairs}}}")
        return ", ".join(parts) or "no mapping"


@dataclass(frozen=True)
class Detection:
    """The format recognised and the mapping into TRL's format (empty when already there)."""

    format: str
    mapping: RowMapping
    description: str


def shape(value: Any) -> str:
    """A coarse shape of a value: `string`, `turns-role`, `turns-parts`, `turns-from`, `turn-from`…"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        if "from" in value and "value" in value:
            return "turn-from"
        if "role" in value:
            return "turn-role"
        return "object"
    if isinstance(value, list):
        first = next((v for v in value if v is not None), None)
        if first is None:
            return "empty-list"
        if isinstance(first, dict):
            if "role" in first:
                return "turns-parts" if isinstance(first.get("content"), list) else "turns-role"
            if "from" in first:
                return "turns-from"
            if "type" in first:
                return "parts"
            return "objects"
        if isinstance(first, str):
            return "strings"
        return "list"
    return type(value).__name__


def column_shapes(rows: list[dict[str, Any]]) -> dict[str, str]:
    """The most common non-null shape of each column over the sampled rows."""
    counts: dict[str, Counter[str]] = {}
    for row in rows:
        for key, value in row.items():
            counts.setdefault(key, Counter())[shape(value)] += 1
    out: dict[str, str] = {}
    for key, counter in counts.items():
        non_null = [(s, n) for s, n in counter.most_common() if s != "null"]
        out[key] = non_null[0][0] if non_null else "null"
    return out


def _first(shapes: dict[str, str], key: str, wanted: tuple[str, ...]) -> str | None:
    """The first synonym of ``key`` present with one of the ``wanted`` shapes."""
    return next((c for c in SYNONYMS[key] if shapes.get(c) in wanted), None)


CONVERSATION = ("turns-role",)
STRINGY = ("string",)
PROMPTISH = ("string", "turns-role")


def detect(rows: list[dict[str, Any]]) -> Detection:
    """Recognise the dataset's format from its sampled rows.

    Parameters
    ----------
    rows
        Sampled rows as read (not mapped).

    Returns
    -------
    Detection
        The format name, the mapping into TRL's format, and a one-line description.
    """
    s = column_shapes(rows)
    has = s.__contains__
    if has("chosen_messages") and has("rejected_messages"):
        return Detection(
            "message-pairs",
            RowMapping(Conversion.MESSAGE_PAIRS),
            "preference pairs as two full conversations (`chosen_messages`/`rejected_messages`)",
        )
    if has("conversations") and has("chosen") and has("rejected"):
        return Detection(
            "sharegpt-preference",
            RowMapping(Conversion.SHAREGPT_PREFERENCE),
            "ShareGPT preference: `conversations` plus `chosen`/`rejected` turns as {from, value}",
        )
    for column in ("conversations", "messages"):
        if s.get(column) == "turns-from":
            tools = " with tool calls and a `tools` column" if has("tools") else ""
            return Detection(
                "sharegpt",
                RowMapping(Conversion.SHAREGPT),
                f"ShareGPT `{column}` ({{from, value}} turns){tools}",
            )
    if s.get("messages") == "turns-parts":
        return Detection(
            "content-parts",
            RowMapping(Conversion.CONTENT_PARTS),
            "`messages` whose content is a list of parts",
        )
    if s.get("messages") == "turns-role":
        if s.get("label") == "bool":
            return Detection(
                "messages-label", RowMapping(), "conversational `messages` with a boolean `label` (KTO-style)"
            )
        return Detection("messages", RowMapping(), "conversational `messages` ({role, content} turns)")
    if has("chosen") and has("rejected"):
        if "turns-parts" in (s["chosen"], s["rejected"], s.get("prompt")):
            return Detection(
                "preference", RowMapping(Conversion.CONTENT_PARTS), "preference pairs whose content is parts"
            )
        if s["chosen"] == "turn-from" and has("prompt"):
            return Detection(
                "sharegpt-preference",
                RowMapping(Conversion.SHAREGPT_PREFERENCE),
                "preference with `chosen`/`rejected` turns as {from, value}",
            )
        explicit = "explicit prompt" if has("prompt") else "implicit prompt"
        conv = "conversational" if s["chosen"] == "turns-role" else "standard"
        return Detection("preference", RowMapping(), f"{conv} preference pairs ({explicit})")
    if has("prompt") and has("completion"):
        if "turns-parts" in (s["prompt"], s["completion"]):
            return Detection(
                "prompt-completion", RowMapping(Conversion.CONTENT_PARTS), "prompt/completion given as parts"
            )
        conv = "conversational" if s["prompt"] == "turns-role" else "standard"
        if s.get("label") == "bool":
            return Detection(
                "prompt-completion-label", RowMapping(), f"{conv} prompt/completion with a boolean `label`"
            )
        return Detection("prompt-completion", RowMapping(), f"{conv} prompt/completion")
    if has("instruction") and has("output"):
        return Detection("alpaca", RowMapping(Conversion.ALPACA), "Alpaca (`instruction`/`input`/`output`)")
    question = next((c for c in ("question", "problem", "query") if s.get(c) == "string"), None)
    answer = next((c for c in ("answer", "solution") if s.get(c) in ("string", "number")), None)
    if question and answer:
        return Detection(
            "question-answer",
            RowMapping(Conversion.QUESTION_ANSWER),
            f"question/answer (`{question}`/`{answer}`), a reference answer for rewards",
        )
    if s.get("prompt") in PROMPTISH:
        return Detection("prompt-only", RowMapping(), "prompts only (`prompt`)")
    if s.get("text") == "string":
        return Detection("text", RowMapping(), "plain text (`text`)")
    return _detect_renames(s)


def _detect_renames(s: dict[str, str]) -> Detection:
    """Formats TRL knows, under other column names: suggest renames."""
    conversation = next((c for c, shp in s.items() if shp == "turns-role"), None)
    if conversation is not None:
        return Detection(
            "messages", RowMapping().plus(messages=conversation), f"conversations in `{conversation}`"
        )
    chosen = _first(s, "chosen", PROMPTISH)
    rejected = _first(s, "rejected", PROMPTISH)
    if chosen and rejected:
        renames = {"chosen": chosen, "rejected": rejected}
        prompt = _first(s, "prompt", PROMPTISH)
        if prompt:
            renames["prompt"] = prompt
        return Detection(
            "preference", RowMapping().plus(**renames), f"preference pairs in `{chosen}`/`{rejected}`"
        )
    prompt = _first(s, "prompt", PROMPTISH)
    completion = next((c for c in SYNONYMS["completion"] if s.get(c) in PROMPTISH and c != prompt), None)
    if prompt and completion:
        return Detection(
            "prompt-completion",
            RowMapping().plus(prompt=prompt, completion=completion),
            f"prompt/completion in `{prompt}`/`{completion}`",
        )
    text = _first(s, "text", STRINGY)
    if text:
        return Detection("text", RowMapping().plus(text=text), f"plain text in `{text}`")
    if prompt:
        return Detection("prompt-only", RowMapping().plus(prompt=prompt), f"prompts in `{prompt}`")
    listed = ", ".join(f"`{k}` ({v})" for k, v in s.items()) or "none"
    return Detection("unknown", RowMapping(), f"no format TRL knows; columns: {listed}")


def answer_source(rows: list[dict[str, Any]], exclude: set[str]) -> str | None:
    """A column that can serve as GRPO's reference `answer` (strings or numbers), not in ``exclude``."""
    s = column_shapes(rows)
    return next(
        (c for c in SYNONYMS["answer"] if c not in exclude and s.get(c) in ("string", "number")), None
    )
