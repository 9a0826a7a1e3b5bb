"""Map a dataset row onto TRL's formats: a named conversion, then column renames.

Pure Python (no torch, no datasets): the operator's validator applies :func:`map_row` to sample rows to
prove the mapping it suggests works, and the training runtime applies exactly the same function with
``datasets.map``. The output is one of TRL's formats:

- ``messages`` (conversational language modelling),
- ``prompt`` + ``completion`` (standard or conversational),
- ``text`` (plain language modelling),
- ``prompt`` + ``chosen`` + ``rejected`` (preference, explicit prompt) or ``chosen`` + ``rejected``,
- ``prompt`` + ``answer`` (GRPO with a reference answer for the Accuracy reward).

Columns a conversion does not use are kept, so reward functions still see them.

With ``datasets``, declare the columns of :data:`TURN_COLUMNS` that hold lists as ``List(Json())`` in
``features=``: turns differ in keys (a tool-call turn has ``tool_calls``), and Arrow would otherwise fix
the turn's struct from the first written batch and refuse a later one::

    probe = ds.select(range(1)).map(fn, remove_columns=removed)
    turns = {c: List(Json()) for c in TURN_COLUMNS if isinstance(probe.features.get(c), List)}
    ds = ds.map(fn, remove_columns=removed, features=Features({**probe.features, **turns}))
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from finetune_training.plan import ColumnMapping, Conversion

Row = dict[str, Any]
Message = dict[str, Any]

TURN_COLUMNS = ("messages", "prompt", "completion", "chosen", "rejected")
"""Output columns that may hold lists of turns (see the module docstring)."""

SHAREGPT_ROLES: dict[str, str] = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
    "function": "tool",
}
"""ShareGPT `from` values and the chat role each becomes (`function_call` is an assistant tool call)."""

QUESTION_COLUMNS = ("question", "problem", "query")
ANSWER_COLUMNS = ("answer", "solution")
GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)
BOXED = re.compile(r"\\boxed\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")


class MappingError(ValueError):
    """A row does not fit the requested conversion or column mapping; the message names what is missing."""


def map_row(row: Mapping[str, Any], conversion: Conversion | None, columns: ColumnMapping | None) -> Row:
    """Turn one dataset row into TRL's format.

    Parameters
    ----------
    row
        The row as ``datasets`` yields it (column name -> value).
    conversion
        The named whole-row conversion (`spec.dataset.conversion`), applied first; None for none.
    columns
        The column renames (`spec.dataset.columns`, target: source), applied after the conversion.

    Returns
    -------
    dict
        A new row; the input is not modified.

    Raises
    ------
    MappingError
        When the row lacks a column the conversion or a rename needs, or holds a value of the wrong type.
    """
    out: Row = dict(row)
    if conversion is not None:
        out = CONVERSIONS[Conversion(conversion)](out)
    if columns is not None:
        out = rename_columns(out, columns)
    return out


def mapped_columns(
    columns: Iterable[str], conversion: Conversion | None, columns_map: ColumnMapping | None
) -> list[str]:
    """The column names :func:`map_row` produces from a dataset with ``columns`` (for ``remove_columns``).

    Parameters
    ----------
    columns
        The dataset's column names.
    conversion
        The named conversion, or None.
    columns_map
        The renames, or None.

    Returns
    -------
    list of str
        Output column names, in a stable order.
    """
    names = list(columns)
    if conversion is not None:
        consumed, produced = CONVERSION_COLUMNS[Conversion(conversion)]
        present = set(names)
        # A conversion produces an optional column (system, tools) only when its source exists.
        outputs = [c for c in produced if c not in OPTIONAL_OUTPUTS or OPTIONAL_OUTPUTS[c] & present]
        kept = [n for n in names if n not in consumed]
        names = kept + [p for p in outputs if p not in kept]
    if columns_map is not None:
        renames = columns_map.renames()
        targets = set(renames.values())
        names = [renames.get(n, n) for n in names if n in renames or n not in targets]
    return list(dict.fromkeys(names))


def rename_columns(row: Row, columns: ColumnMapping) -> Row:
    """Apply the renames of ``columns`` (target: source) at once, so swaps work.

    Raises
    ------
    MappingError
        When a source column is missing from the row.
    """
    renames = columns.renames()
    missing = [src for src in renames if src not in row]
    if missing:
        raise MappingError(
            f"column(s) {', '.join(f'`{m}`' for m in missing)} named in `columns` are not in the row "
            f"(it has {', '.join(f'`{k}`' for k in row) or 'no columns'})"
        )
    targets = set(renames.values())
    out: Row = {}
    for key, value in row.items():
        if key in renames:
            out[renames[key]] = value
        elif key not in targets:
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------- helpers


def _require(row: Row, *names: str) -> None:
    missing = [n for n in names if n not in row or row[n] is None]
    if missing:
        raise MappingError(
            f"the row has no {', '.join(f'`{m}`' for m in missing)} column "
            f"(it has {', '.join(f'`{k}`' for k in row) or 'no columns'})"
        )


def _text(value: Any, what: str) -> str:
    """A string field, or the text of a content-parts list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return parts_to_text(value, what)
    if value is None:
        return ""
    raise MappingError(f"{what} must be a string, got {type(value).__name__}")


def parts_to_text(parts: list[Any], what: str = "content") -> str:
    """Join a list of content parts ([{type: text, text|value}], or plain strings) into one string.

    Raises
    ------
    MappingError
        For a non-text part (an image or audio): these models are text-only.
    """
    texts: list[str] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, Mapping):
            raise MappingError(f"{what} parts must be objects, got {type(part).__name__}")
        kind = part.get("type", "text")
        if kind != "text":
            raise MappingError(f"{what} has a `{kind}` part; only text parts can be trained on")
        value = part.get("text", part.get("value"))
        if not isinstance(value, str):
            raise MappingError(f"{what} text part has no `text` or `value` string")
        texts.append(value)
    return "".join(texts)


def _parse_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _tool_call(value: Any) -> dict[str, Any]:
    """A ShareGPT `function_call` value ({"name", "arguments"} as JSON text) as an OpenAI-style tool call.

    The arguments stay a JSON string: chat templates accept both, and Arrow needs one type per column.
    """
    call = _parse_json(value)
    if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
        raise MappingError("a `function_call` turn must hold a JSON object with a `name` string")
    arguments = call.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {"type": "function", "function": {"name": call["name"], "arguments": arguments}}


def sharegpt_turn(turn: Any, index: int) -> Message:
    """One ShareGPT turn ({from, value}, or already {role, content}) as a chat message."""
    if not isinstance(turn, Mapping):
        raise MappingError(
            f"turn {index} must be an object with `from` and `value`, got {type(turn).__name__}"
        )
    source = turn.get("from", turn.get("role"))
    if not isinstance(source, str):
        raise MappingError(f"turn {index} has no `from` (or `role`) string")
    role = SHAREGPT_ROLES.get(source.lower())
    if role is None:
        known = ", ".join(sorted(SHAREGPT_ROLES))
        raise MappingError(f"turn {index} has unknown `from` value {source!r} (known: {known})")
    value = turn.get("value", turn.get("content"))
    if source.lower() == "function_call":
        return {"role": "assistant", "content": "", "tool_calls": [_tool_call(value)]}
    return {"role": role, "content": _text(value, f"turn {index} `value`")}


def _turns(value: Any, column: str) -> list[Any]:
    if isinstance(value, str):
        value = _parse_json(value)
    if not isinstance(value, list):
        raise MappingError(f"`{column}` must be a list of turns, got {type(value).__name__}")
    return value


def _plain_message(message: Any, index: int, column: str) -> Message:
    """A {role, content} message with content flattened to a string; other keys (loss_weight) dropped."""
    if not isinstance(message, Mapping):
        raise MappingError(f"`{column}` turn {index} must be an object, got {type(message).__name__}")
    if "role" not in message and "from" in message:
        return sharegpt_turn(message, index)
    role = message.get("role")
    if not isinstance(role, str):
        raise MappingError(f"`{column}` turn {index} has no `role` string")
    out: Message = {
        "role": role,
        "content": _text(message.get("content"), f"`{column}` turn {index} content"),
    }
    if message.get("tool_calls"):
        out["tool_calls"] = message["tool_calls"]
    return out


def _system_first(row: Row, messages: list[Message]) -> list[Message]:
    system = row.get("system")
    if isinstance(system, str) and system.strip() and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system}, *messages]
    return messages


def _tools(row: Row) -> None:
    """Normalise a `tools` column to a JSON string (Arrow needs one type; TRL parses JSON strings)."""
    tools = row.get("tools")
    if tools is None or isinstance(tools, str):
        return
    if not isinstance(tools, list):
        raise MappingError(f"`tools` must be a list or a JSON string, got {type(tools).__name__}")
    row["tools"] = json.dumps(tools, ensure_ascii=False)


def _shared_prefix(a: list[Message], b: list[Message]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def final_answer(answer: str) -> str:
    """The final answer of a worked solution: after GSM8K's `####`, else inside `\\boxed{}`, else as is."""
    match = GSM8K_FINAL.search(answer)
    if match:
        return match.group(1).strip().replace(",", "")
    boxed = BOXED.findall(answer)
    if boxed:
        return str(boxed[-1]).strip()
    return answer.strip()


# ------------------------------------------------------------------------------------------ conversions


def convert_alpaca(row: Row) -> Row:
    """instruction/input/output (+ system, history) -> conversational prompt/completion."""
    _require(row, "instruction", "output")
    instruction = _text(row.pop("instruction"), "`instruction`")
    extra = _text(row.pop("input", None), "`input`")
    output = _text(row.pop("output"), "`output`")
    prompt: list[Message] = []
    system = row.pop("system", None)
    if isinstance(system, str) and system.strip():
        prompt.append({"role": "system", "content": system})
    history = row.pop("history", None) or []
    if not isinstance(history, list):
        raise MappingError(
            f"`history` must be a list of [instruction, response] pairs, got {type(history).__name__}"
        )
    for i, pair in enumerate(history):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise MappingError(f"`history` item {i} must be an [instruction, response] pair")
        prompt.append({"role": "user", "content": _text(pair[0], f"`history` item {i}")})
        prompt.append({"role": "assistant", "content": _text(pair[1], f"`history` item {i}")})
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    prompt.append({"role": "user", "content": user})
    row["prompt"] = prompt
    row["completion"] = [{"role": "assistant", "content": output}]
    return row


def convert_sharegpt(row: Row) -> Row:
    """conversations [{from, value}] (+ system, tools) -> messages [{role, content}]."""
    column = "messages" if "messages" in row and "conversations" not in row else "conversations"
    _require(row, column)
    turns = _turns(row.pop(column), column)
    messages = [sharegpt_turn(t, i) for i, t in enumerate(turns)]
    row["messages"] = _system_first(row, messages)
    row.pop("system", None)
    _tools(row)
    return row


def convert_sharegpt_preference(row: Row) -> Row:
    """conversations + chosen/rejected {from, value} turns -> prompt/chosen/rejected (conversational)."""
    column = "prompt" if "prompt" in row and "conversations" not in row else "conversations"
    _require(row, column, "chosen", "rejected")
    turns = _turns(row.pop(column), column)
    row["prompt"] = _system_first(row, [sharegpt_turn(t, i) for i, t in enumerate(turns)])
    row.pop("system", None)
    for key in ("chosen", "rejected"):
        value = row[key]
        answer = value if isinstance(value, list) else [value]
        row[key] = [sharegpt_turn(t, i) for i, t in enumerate(answer)]
    _tools(row)
    return row


def convert_content_parts(row: Row) -> Row:
    """Messages whose content is a list of parts -> the same messages with string content."""
    converted = False
    for column in ("messages", "prompt", "completion", "chosen", "rejected"):
        value = row.get(column)
        if isinstance(value, list):
            row[column] = [_plain_message(m, i, column) for i, m in enumerate(value)]
            converted = True
    if not converted:
        raise MappingError(
            "ContentParts needs a `messages` (or prompt/completion/chosen/rejected) list of turns "
            f"(the row has {', '.join(f'`{k}`' for k in row)})"
        )
    return row


def convert_message_pairs(row: Row) -> Row:
    """chosen_messages/rejected_messages full conversations -> shared prompt + chosen/rejected endings."""
    _require(row, "chosen_messages", "rejected_messages")
    chosen = [
        _plain_message(m, i, "chosen_messages")
        for i, m in enumerate(_turns(row.pop("chosen_messages"), "chosen_messages"))
    ]
    rejected = [
        _plain_message(m, i, "rejected_messages")
        for i, m in enumerate(_turns(row.pop("rejected_messages"), "rejected_messages"))
    ]
    shared = _shared_prefix(chosen, rejected)
    # The prompt ends before the first assistant turn where the two conversations differ.
    while shared > 0 and chosen[shared - 1]["role"] == "assistant":
        shared -= 1
    row["prompt"] = chosen[:shared]
    row["chosen"] = chosen[shared:]
    row["rejected"] = rejected[shared:]
    return row


def convert_question_answer(row: Row) -> Row:
    """question/answer -> conversational prompt, the worked answer as completion, the final `answer`."""
    question_col = next((c for c in QUESTION_COLUMNS if c in row), QUESTION_COLUMNS[0])
    answer_col = next((c for c in ANSWER_COLUMNS if c in row), ANSWER_COLUMNS[0])
    _require(row, question_col, answer_col)
    question = _text(row.pop(question_col), f"`{question_col}`")
    worked = row.pop(answer_col)
    if isinstance(worked, int | float) and not isinstance(worked, bool):
        worked = str(worked)
    worked = _text(worked, f"`{answer_col}`")
    prompt: list[Message] = []
    system = row.pop("system", None)
    if isinstance(system, str) and system.strip():
        prompt.append({"role": "system", "content": system})
    prompt.append({"role": "user", "content": question})
    row["prompt"] = prompt
    row["completion"] = [{"role": "assistant", "content": worked}]
    row["answer"] = final_answer(worked)
    return row


CONVERSIONS: dict[Conversion, Callable[[Row], Row]] = {
    Conversion.ALPACA: convert_alpaca,
    Conversion.SHAREGPT: convert_sharegpt,
    Conversion.SHAREGPT_PREFERENCE: convert_sharegpt_preference,
    Conversion.CONTENT_PARTS: convert_content_parts,
    Conversion.MESSAGE_PAIRS: convert_message_pairs,
    Conversion.QUESTION_ANSWER: convert_question_answer,
}

CONVERSION_COLUMNS: dict[Conversion, tuple[frozenset[str], tuple[str, ...]]] = {
    Conversion.ALPACA: (
        frozenset({"instruction", "input", "output", "system", "history"}),
        ("prompt", "completion"),
    ),
    Conversion.SHAREGPT: (frozenset({"conversations", "messages", "system"}), ("messages", "tools")),
    Conversion.SHAREGPT_PREFERENCE: (
        frozenset({"conversations", "prompt", "chosen", "rejected", "system"}),
        ("prompt", "chosen", "rejected", "tools"),
    ),
    Conversion.CONTENT_PARTS: (frozenset(), ()),
    Conversion.MESSAGE_PAIRS: (
        frozenset({"chosen_messages", "rejected_messages"}),
        ("prompt", "chosen", "rejected"),
    ),
    Conversion.QUESTION_ANSWER: (
        frozenset({*QUESTION_COLUMNS, *ANSWER_COLUMNS, "system"}),
        ("prompt", "completion", "answer"),
    ),
}
"""Per conversion: the columns it consumes and the columns it produces (for `remove_columns`)."""

OPTIONAL_OUTPUTS: dict[str, frozenset[str]] = {"tools": frozenset({"tools"})}
"""Produced columns that exist only when one of these input columns does."""
