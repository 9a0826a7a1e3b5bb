"""Per-method verdicts: Ready as configured, NeedsMapping (with the exact mapping), or Incompatible.

For each method a few candidate mappings are tried on the sample, in order: the mapping the user gave,
no mapping, the mapping the recognised format calls for, each with the method's own additions (SFT on
preference data trains on `chosen`; GRPO takes its reference `answer` from a `solution`-like column).
The first one under which the mapped rows fit the method and pass its fatal checks decides.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from finetune_operator.api.status import MethodVerdict, Verdict
from finetune_operator.validation.checks import (
    Problems,
    aggregate,
    dpo_problems,
    grpo_problems,
    is_fatal,
    kto_problems,
    sft_problems,
)
from finetune_operator.validation.formats import Detection, RowMapping, answer_source
from finetune_operator.validation.report import Finding
from finetune_training.mapping import MappingError, map_row
from finetune_training.profiles import PROFILES, profile, row_kind

METHODS = tuple(m.value for m in PROFILES)
"""Methods a report covers: every method the operator trains."""

NEEDS = {m.value: p.needs for m, p in PROFILES.items()}

# Kept for callers that name the format of a row.
trl_kind = row_kind


def _accepts(method: str, row: dict[str, Any]) -> bool:
    return profile(method).accepts(row)


@dataclass
class Mapped:
    """The sample under one mapping."""

    rows: list[dict[str, Any] | None]
    errors: list[str | None]

    @property
    def ok_rows(self) -> list[dict[str, Any]]:
        """The rows the mapping worked on."""
        return [r for r in self.rows if r is not None]


@dataclass
class Attempt:
    """One candidate mapping tried for one method."""

    mapping: RowMapping
    ok: bool
    reason: str
    fits: bool = False
    """The mapped rows have the method's format (they may still fail its checks)."""
    findings: list[Finding] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


class Evaluator:
    """Tries candidate mappings on a sample, caching each mapping's rows."""

    def __init__(self, rows: list[dict[str, Any]], total_rows: int | None, answer_column: str | None) -> None:
        self.rows = rows
        self.total_rows = total_rows
        self.answer_column = answer_column
        self._cache: dict[tuple[str, str], Mapped] = {}

    def mapped(self, mapping: RowMapping) -> Mapped:
        """The sample under ``mapping`` (cached)."""
        key = mapping.key()
        if key not in self._cache:
            out: list[dict[str, Any] | None] = []
            errors: list[str | None] = []
            for row in self.rows:
                try:
                    out.append(map_row(row, mapping.conversion, mapping.columns))
                    errors.append(None)
                except MappingError as exc:
                    out.append(None)
                    errors.append(str(exc))
            self._cache[key] = Mapped(out, errors)
        return self._cache[key]

    def problems(self, method: str) -> Callable[[dict[str, Any]], Problems]:
        """The per-row check function of ``method``."""
        if method == "SFT":
            return sft_problems
        if method == "DPO":
            return dpo_problems
        if method == "GRPO":
            return lambda row: grpo_problems(row, self.answer_column)
        return kto_problems

    def attempt(self, method: str, mapping: RowMapping) -> Attempt:
        """Try ``mapping`` for ``method``."""
        mapped = self.mapped(mapping)
        good = mapped.ok_rows
        if not good:
            first = next(e for e in mapped.errors if e)
            return Attempt(mapping, False, f"{mapping.describe()} does not fit the rows: {first}")
        kinds = Counter(trl_kind(r) for r in good)
        sample_row = next(r for r in good if trl_kind(r) == kinds.most_common(1)[0][0])
        if not _accepts(method, sample_row):
            have = ", ".join(f"`{c}`" for c in sample_row) or "no columns"
            after = "" if mapping.empty else f" (after {mapping.describe()})"
            return Attempt(mapping, False, f"{NEEDS[method]}; the rows have {have}{after}", rows=good)
        check = self.problems(method)
        per_row: list[Problems] = []
        for row, error in zip(mapped.rows, mapped.errors, strict=True):
            per_row.append({"MappingFailed": error or "the mapping failed"} if row is None else check(row))
        findings = aggregate(per_row, method, self.total_rows)
        fatal = [f for f in findings if is_fatal(f)]
        if fatal:
            f = fatal[0]
            return Attempt(
                mapping,
                False,
                f"{f.message} ({f.sample_rows} of {len(per_row)} sampled rows)",
                True,
                findings,
                good,
            )
        return Attempt(mapping, True, "", True, findings, good)

    def extras(self, method: str, mapping: RowMapping) -> list[RowMapping]:
        """The method's additions on top of ``mapping``."""
        good = self.mapped(mapping).ok_rows
        if not good:
            return []
        row = good[0]
        if method == "SFT" and trl_kind(row) == "preference":
            # Train on the preferred answers.
            return (
                [mapping.plus(completion="chosen")] if "prompt" in row else [mapping.plus(messages="chosen")]
            )
        if method == "GRPO" and self.answer_column == "answer" and "answer" not in row:
            exclude = {"prompt", "completion", "chosen", "rejected", "messages", "text"}
            source = answer_source(good, exclude)
            if source is not None:
                return [mapping.plus(answer=source)]
        return []


def decide(
    method: str, evaluator: Evaluator, detection: Detection, given: RowMapping
) -> tuple[MethodVerdict, Attempt]:
    """The verdict for ``method``, and the attempt it rests on.

    Parameters
    ----------
    method
        SFT, DPO, GRPO or KTO.
    evaluator
        The sample and its cached mappings.
    detection
        The recognised format and its mapping.
    given
        The mapping in the spec (`spec.dataset.conversion`/`columns`), possibly empty.
    """
    bases = [given] if not given.empty else []
    bases += [RowMapping(), detection.mapping]
    candidates: list[RowMapping] = []
    for base in bases:
        for m in (base, *evaluator.extras(method, base)):
            if m.key() not in {c.key() for c in candidates}:
                candidates.append(m)
    attempts: list[Attempt] = []
    for mapping in candidates:
        attempt = evaluator.attempt(method, mapping)
        attempts.append(attempt)
        if not attempt.ok:
            continue
        if mapping.key() == given.key():
            how = f" with {given.describe()}" if not given.empty else ""
            reason = f"{detection.description}{how}"
            return _verdict(method, Verdict.READY, reason, given if not given.empty else None), attempt
        if mapping.empty:
            reason = f"{detection.description}: remove `conversion` and `columns` from `spec.dataset`"
        else:
            reason = f"{detection.description}: set {mapping.describe()} in `spec.dataset`"
        if not given.empty:
            failed = attempts[0]
            reason = f"the mapping given ({given.describe()}) does not work: {failed.reason}; {reason}"
        return _verdict(method, Verdict.NEEDS_MAPPING, reason, mapping), attempt
    # Nothing fits: explain with the attempt that came closest (right format, failed checks).
    best = next((a for a in attempts if a.fits), attempts[-1] if given.empty else attempts[0])
    return _verdict(method, Verdict.INCOMPATIBLE, best.reason, None), best


def _verdict(method: str, verdict: Verdict, reason: str, mapping: RowMapping | None) -> MethodVerdict:
    columns = None
    if mapping is not None and mapping.columns is not None and mapping.columns.renames():
        columns = mapping.columns
    return MethodVerdict(
        method=method,
        verdict=verdict,
        reason=reason,
        conversion=None if mapping is None else mapping.conversion,
        columns=columns,
    )
