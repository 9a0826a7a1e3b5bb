"""Structural checks on rows already in TRL's format, per method.

Each check returns, per row, the problems found (check name -> detail). :func:`aggregate` counts them
over the sample; a check is fatal for a method when even one row fails it (the run would crash) or when
every row does (the run would learn nothing), as :data:`CHECKS` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from finetune_operator.validation.report import Finding, Severity

ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
"""Roles chat templates accept."""


@dataclass(frozen=True)
class Check:
    """What a check means and when it stops a method."""

    severity: Severity
    fatal: str
    """`any`: one failing row stops the method; `all`: only when every row fails; `never`."""
    message: str
    """What failing rows have, completed by the first row's detail."""


CHECKS: dict[str, Check] = {
    "MappingFailed": Check(
        Severity.ERROR, "any", "the mapping fails on these rows (the run would stop there)"
    ),
    "WrongType": Check(Severity.ERROR, "any", "a value has the wrong type"),
    "InvalidRole": Check(Severity.ERROR, "any", "a turn has a role chat templates do not know"),
    "RoleOrder": Check(Severity.WARNING, "never", "turns are in an unusual order"),
    "NoAssistantTurn": Check(Severity.ERROR, "all", "no assistant turn to learn from"),
    "EmptyContent": Check(Severity.WARNING, "all", "a turn or field is empty"),
    "ChosenEqualsRejected": Check(Severity.ERROR, "all", "`chosen` equals `rejected` (nothing to prefer)"),
    "NoSharedPrompt": Check(Severity.WARNING, "never", "`chosen` and `rejected` share no prompt"),
    "EmptyPrompt": Check(Severity.ERROR, "all", "the prompt is empty"),
    "PromptEndsWithAssistant": Check(Severity.WARNING, "never", "the prompt ends with an assistant turn"),
    "MissingAnswer": Check(Severity.ERROR, "all", "no reference answer for the Accuracy reward"),
    "LabelNotBool": Check(Severity.ERROR, "any", "`label` must be true or false"),
    "UndesirableRow": Check(
        Severity.ERROR,
        "any",
        "rows are labelled undesirable (`label: false`): SFT would learn to imitate them (train KTO on "
        "this data, or keep only the rows labelled true)",
    ),
    "DuplicateRows": Check(Severity.WARNING, "never", "rows repeat an earlier row"),
    "MixedTypes": Check(Severity.WARNING, "never", "a column holds values of different types"),
    "OverMaxLength": Check(Severity.WARNING, "never", "rows are longer than `maxLength` and get truncated"),
}

Problems = dict[str, str]


def _turns(
    value: Any, column: str, problems: Problems, *, require_content: bool = True
) -> list[dict[str, Any]]:
    """Check a list of turns; returns the usable turns."""
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        problems.setdefault("WrongType", f"`{column}` must be a list of {{role, content}} objects")
        return []
    for i, turn in enumerate(value):
        role = turn.get("role")
        if not isinstance(role, str) or role not in ROLES:
            problems.setdefault(
                "InvalidRole", f"`{column}` turn {i} has role {role!r} (use {', '.join(sorted(ROLES))})"
            )
        content = turn.get("content")
        calls = turn.get("tool_calls")
        if isinstance(content, list):
            problems.setdefault(
                "WrongType",
                f"`{column}` turn {i} content is a list of parts (use `conversion: ContentParts`)",
            )
        elif content is None and not calls:
            if require_content:
                problems.setdefault("WrongType", f"`{column}` turn {i} has no `content`")
        elif not isinstance(content, str) and content is not None:
            problems.setdefault(
                "WrongType", f"`{column}` turn {i} content is {type(content).__name__}, not a string"
            )
        elif not calls and isinstance(content, str) and not content.strip():
            problems.setdefault("EmptyContent", f"`{column}` turn {i} ({role}) is empty")
    return value


def _order(turns: list[dict[str, Any]], problems: Problems, *, starts_with_user: bool = True) -> None:
    roles = [t.get("role") for t in turns]
    if "system" in roles[1:]:
        problems.setdefault("RoleOrder", "a system turn comes after the first turn")
    rest = [r for r in roles if r != "system"]
    if starts_with_user and rest and rest[0] != "user":
        problems.setdefault("RoleOrder", f"the conversation starts with {rest[0]!r}, not 'user'")
    for i in range(1, len(rest)):
        if rest[i] == rest[i - 1] and rest[i] in ("user", "assistant"):
            problems.setdefault("RoleOrder", f"two {rest[i]} turns in a row")
            break
        if rest[i] == "tool" and rest[i - 1] not in ("assistant", "tool"):
            problems.setdefault("RoleOrder", "a tool turn does not follow an assistant tool call")
            break


def _has_assistant(turns: list[dict[str, Any]]) -> bool:
    return any(
        t.get("role") == "assistant"
        and (t.get("tool_calls") or (isinstance(t.get("content"), str) and t["content"].strip()))
        for t in turns
    )


def _string(value: Any, column: str, problems: Problems, *, empty: str = "EmptyContent") -> None:
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        problems.setdefault("WrongType", f"`{column}` is {kind}, not a string")
    elif not value.strip():
        problems.setdefault(empty, f"`{column}` is empty")


def _prompt_part(row: dict[str, Any], problems: Problems) -> list[dict[str, Any]] | None:
    """Check `prompt` (string or turns); returns its turns when conversational."""
    prompt = row.get("prompt")
    if isinstance(prompt, list):
        return _turns(prompt, "prompt", problems)
    _string(prompt, "prompt", problems)
    return None


def sft_problems(row: dict[str, Any]) -> Problems:
    """Problems of one row for SFT (`messages`, `prompt`/`completion` or `text`)."""
    problems: Problems = {}
    if row.get("label") is False:
        problems["UndesirableRow"] = "`label` is false: the row's answer is marked bad"
    if "messages" in row:
        turns = _turns(row["messages"], "messages", problems)
        if turns:
            _order(turns, problems)
            if not _has_assistant(turns):
                problems["NoAssistantTurn"] = "`messages` has no non-empty assistant turn"
        return problems
    if "prompt" in row and "completion" in row:
        prompt = _prompt_part(row, problems)
        completion = row["completion"]
        if isinstance(completion, list):
            done = _turns(completion, "completion", problems)
            _order((prompt or []) + done, problems)
            if done and not _has_assistant(done):
                problems["NoAssistantTurn"] = "`completion` has no non-empty assistant turn"
        else:
            _string(completion, "completion", problems)
            if "EmptyContent" in problems and problems["EmptyContent"].startswith("`completion`"):
                problems["NoAssistantTurn"] = "`completion` is empty"
        return problems
    _string(row.get("text"), "text", problems)
    return problems


def dpo_problems(row: dict[str, Any]) -> Problems:
    """Problems of one row for DPO (`chosen`/`rejected`, with or without `prompt`)."""
    problems: Problems = {}
    prompt_turns = _prompt_part(row, problems) if "prompt" in row else None
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if isinstance(chosen, list) or isinstance(rejected, list):
        c = _turns(chosen, "chosen", problems)
        r = _turns(rejected, "rejected", problems)
        _order((prompt_turns or []) + c, problems, starts_with_user=True)
        if "prompt" not in row and c and r and c[0] != r[0]:
            problems["NoSharedPrompt"] = (
                "`chosen` and `rejected` start differently: TRL finds an empty prompt"
            )
    else:
        _string(chosen, "chosen", problems)
        _string(rejected, "rejected", problems)
        if (
            "prompt" not in row
            and isinstance(chosen, str)
            and isinstance(rejected, str)
            and chosen[:1] != rejected[:1]
        ):
            problems["NoSharedPrompt"] = (
                "`chosen` and `rejected` share no leading text: TRL finds an empty prompt"
            )
    if chosen == rejected:
        problems["ChosenEqualsRejected"] = "`chosen` and `rejected` are identical"
    return problems


def grpo_problems(row: dict[str, Any], answer_column: str | None) -> Problems:
    """Problems of one row for GRPO (`prompt`, and the reference answer the Accuracy reward reads)."""
    problems: Problems = {}
    prompt = row.get("prompt")
    if isinstance(prompt, list):
        turns = _turns(prompt, "prompt", problems)
        if not turns:
            problems.setdefault("EmptyPrompt", "`prompt` has no turns")
        else:
            _order(turns, problems)
            if turns[-1].get("role") == "assistant":
                problems["PromptEndsWithAssistant"] = "the last prompt turn is the assistant's"
    else:
        _string(prompt, "prompt", problems, empty="EmptyPrompt")
    if answer_column is not None:
        answer = row.get(answer_column)
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            problems["MissingAnswer"] = f"`{answer_column}` is missing or empty"
    return problems


def kto_problems(row: dict[str, Any]) -> Problems:
    """Problems of one row for KTO (`prompt`/`completion` and a boolean `label`)."""
    problems = sft_problems({k: v for k, v in row.items() if k in ("prompt", "completion")})
    if not isinstance(row.get("label"), bool):
        problems["LabelNotBool"] = f"`label` is {row.get('label')!r}"
    return problems


def aggregate(per_row: list[Problems], method: str | None, total_rows: int | None) -> list[Finding]:
    """Count each check over the sample, scaled to the dataset's rows.

    Parameters
    ----------
    per_row
        The problems of each sampled row.
    method
        The method the checks are about.
    total_rows
        The dataset's row count (exact or estimated), for the scaled counts.

    Returns
    -------
    list of Finding
    """
    n = len(per_row)
    seen: dict[str, list[int]] = {}
    details: dict[str, str] = {}
    for i, problems in enumerate(per_row):
        for name, detail in problems.items():
            seen.setdefault(name, []).append(i)
            details.setdefault(name, detail)
    findings = []
    for name, rows in seen.items():
        check = CHECKS[name]
        share = len(rows) / n if n else 0.0
        findings.append(
            Finding(
                check=name,
                method=method,
                severity=check.severity,
                message=f"{check.message}: {details[name]}",
                sample_rows=len(rows),
                share=round(share, 4),
                estimated_rows=None if total_rows is None else round(share * total_rows),
                examples=rows[:5],
            )
        )
    return sorted(findings, key=lambda f: (f.severity != Severity.ERROR, -f.sample_rows))


def is_fatal(finding: Finding) -> bool:
    """Whether ``finding`` stops its method (see :class:`Check`)."""
    fatal = CHECKS[finding.check].fatal if finding.check in CHECKS else "never"
    return (fatal == "any" and finding.sample_rows > 0) or (fatal == "all" and finding.share >= 1.0)
