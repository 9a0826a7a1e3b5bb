"""GRPO reward functions: built-in ones for each `RewardType`, and user functions in Python.

Every reward has the documented signature::

    def reward(completions: list, prompts: list, **columns) -> list[float]

`completions` holds strings, or message lists (``[{"role": "assistant", "content": ...}]``) for
conversational prompts; `columns` holds the dataset's other columns (one list per column, aligned with
`completions`), e.g. ``answer``. This module is torch-free.
"""

from __future__ import annotations

import importlib
import math
import re
import types
from collections.abc import Callable, Sequence
from typing import Any

from finetune_training.errors import TrainingError
from finetune_training.plan import RewardSpec, RewardType

RewardFunction = Callable[..., list[float]]

DEFAULT_ANSWER_COLUMN = "answer"
DEFAULT_TAGS = ("think", "answer")
DEFAULT_TARGET_LENGTH = 256
"""Characters; a short worked answer. Set `targetLength` for anything else."""

_GSM8K = re.compile(r"####\s*([^\n]+)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or the last message's content of a message list."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, Sequence) and completion:
        return completion_text(completion[-1])
    return ""


def _boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}``, with nested braces balanced."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed{") - 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer in a solution: GSM8K ``#### N``, then ``\\boxed{}``, ``<answer>``, the last number.

    Parameters
    ----------
    text
        A completion or a reference solution.

    Returns
    -------
    str or None
        The extracted answer, or None when the text has none.
    """
    found = _GSM8K.findall(text)
    if found:
        return found[-1].strip()
    boxed = _boxed(text)
    if boxed is not None:
        return boxed.strip()
    tagged = _ANSWER_TAG.findall(text)
    if tagged:
        return tagged[-1].strip()
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def normalize_answer(answer: str) -> str | float:
    """A number when the answer is numeric (``$1,000.00`` → 1000.0), else lower-cased words."""
    cleaned = answer.strip().strip(".").replace("$", "").replace(",", "").replace("\\%", "").rstrip("%")
    cleaned = re.sub(r"\\text\{([^}]*)\}", r"\1", cleaned).strip()
    try:
        value = float(cleaned)
    except ValueError:
        frac = re.fullmatch(r"\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}", cleaned)
        if frac and int(frac.group(2)) != 0:
            return int(frac.group(1)) / int(frac.group(2))
        return " ".join(cleaned.lower().split())
    return value if math.isfinite(value) else cleaned


def answers_match(predicted: str | None, reference: str | None) -> bool:
    """True when two extracted answers are the same number (within 1e-6) or the same words."""
    if predicted is None or reference is None:
        return False
    a, b = normalize_answer(predicted), normalize_answer(reference)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
    return a == b


def accuracy_reward(answer_column: str = DEFAULT_ANSWER_COLUMN) -> RewardFunction:
    """1.0 when the completion's final answer equals the reference in `answer_column`, else 0.0."""

    def accuracy(completions: list, prompts: list | None = None, **columns: Any) -> list[float]:
        references = columns.get(answer_column)
        if references is None:
            raise TrainingError(
                "RewardColumnMissing",
                f"the Accuracy reward needs the reference column `{answer_column}`; map one with "
                "`dataset.columns.answer` or set `answerColumn`",
            )
        out = []
        for completion, reference in zip(completions, references, strict=True):
            ref = extract_answer(str(reference)) if reference is not None else None
            out.append(1.0 if answers_match(extract_answer(completion_text(completion)), ref) else 0.0)
        return out

    accuracy.__name__ = "accuracy"
    return accuracy


def format_reward(tags: Sequence[str] = DEFAULT_TAGS) -> RewardFunction:
    """1.0 when the completion is exactly the given tags in order (``<think>…</think><answer>…</answer>``)."""
    body = r"\s*".join(rf"<{re.escape(t)}>.*?</{re.escape(t)}>" for t in tags)
    pattern = re.compile(rf"^\s*{body}\s*$", re.DOTALL)

    def format_(completions: list, prompts: list | None = None, **columns: Any) -> list[float]:
        return [1.0 if pattern.match(completion_text(c)) else 0.0 for c in completions]

    format_.__name__ = "format"
    return format_


def length_reward(target_length: int = DEFAULT_TARGET_LENGTH) -> RewardFunction:
    """1.0 at `target_length` characters, falling linearly to 0.0 at 0 or twice the target."""

    def length(completions: list, prompts: list | None = None, **columns: Any) -> list[float]:
        return [
            max(0.0, 1.0 - abs(len(completion_text(c)) - target_length) / target_length) for c in completions
        ]

    length.__name__ = "length"
    return length


def load_user_function(spec: RewardSpec) -> RewardFunction:
    """The user function of a Python reward: `function` as ``module:function``, or inline `code`.

    With `code`, `function` (if set) names the function defined there; otherwise it must be `reward`.
    """
    if spec.code:
        name = spec.function or "reward"
        module = types.ModuleType("ftjob_user_reward")
        try:
            exec(compile(spec.code, "<reward code>", "exec"), module.__dict__)
        except Exception as exc:
            raise TrainingError("RewardInvalid", f"the reward `code` does not run: {exc!r}") from exc
        fn = module.__dict__.get(name)
        if not callable(fn):
            raise TrainingError("RewardInvalid", f"the reward `code` must define a function `{name}`")
    elif spec.function:
        module_name, _, name = spec.function.partition(":")
        if not module_name or not name:
            raise TrainingError(
                "RewardInvalid", f"`function` must be `module:function`, not {spec.function!r}"
            )
        try:
            fn = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as exc:
            raise TrainingError("RewardInvalid", f"cannot import reward `{spec.function}`: {exc}") from exc
    else:
        raise TrainingError("RewardInvalid", "a Python reward needs `function` (module:function) or `code`")
    return _checked(fn, name)


def _checked(fn: Callable[..., Any], name: str) -> RewardFunction:
    """Wrap a user function so a wrong return value fails with a message naming it."""

    def wrapped(completions: list, prompts: list | None = None, **columns: Any) -> list[float]:
        values = fn(completions=completions, prompts=prompts, **columns)
        if not isinstance(values, Sequence) or len(values) != len(completions):
            raise TrainingError(
                "RewardInvalid",
                f"reward `{name}` must return a list of {len(completions)} floats, "
                f"got {type(values).__name__}",
            )
        return [float(v) if v is not None else math.nan for v in values]

    wrapped.__name__ = name
    return wrapped


def build_reward(spec: RewardSpec) -> RewardFunction:
    """The reward function for one spec."""
    if spec.type == RewardType.ACCURACY:
        return accuracy_reward(spec.answer_column or DEFAULT_ANSWER_COLUMN)
    if spec.type == RewardType.FORMAT:
        return format_reward(tuple(spec.tags) if spec.tags else DEFAULT_TAGS)
    if spec.type == RewardType.LENGTH:
        return length_reward(spec.target_length or DEFAULT_TARGET_LENGTH)
    return load_user_function(spec)


def build_rewards(
    specs: Sequence[RewardSpec], columns: Sequence[str]
) -> tuple[list[RewardFunction], list[float]]:
    """Reward functions and weights for GRPO; with no specs, Accuracy on the `answer` column.

    Parameters
    ----------
    specs
        The plan's rewards.
    columns
        The training dataset's columns, to check that reference columns exist before training.

    Returns
    -------
    tuple
        The functions and their weights (for ``GRPOConfig.reward_weights``).
    """
    specs = list(specs) or [RewardSpec(type=RewardType.ACCURACY)]
    for spec in specs:
        if spec.type == RewardType.ACCURACY:
            column = spec.answer_column or DEFAULT_ANSWER_COLUMN
            if column not in columns:
                raise TrainingError(
                    "RewardColumnMissing",
                    f"the Accuracy reward needs a `{column}` column but the dataset has "
                    f"{sorted(columns)}; map one with `dataset.columns.answer` or add `rewards`",
                )
    return [build_reward(s) for s in specs], [s.weight for s in specs]
