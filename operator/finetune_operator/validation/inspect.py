"""`inspect_dataset`: read a sample, recognise the format, decide per method, check, measure."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from finetune_operator.api.status import Verdict
from finetune_operator.validation.checks import CHECKS, is_fatal
from finetune_operator.validation.errors import names, not_found
from finetune_operator.validation.formats import RowMapping, detect, shape
from finetune_operator.validation.lengths import length_stats
from finetune_operator.validation.local import looks_local, sample_local
from finetune_operator.validation.readers import MIB
from finetune_operator.validation.report import ColumnInfo, DatasetReport, Finding, Severity, SourceInfo
from finetune_operator.validation.sampling import Sample
from finetune_operator.validation.verdicts import METHODS, Attempt, Evaluator, decide
from finetune_training.plan import DatasetSource, Method

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
MAX_ROW_BYTES = 16 * MIB
"""Rows larger than this are refused: no sensible `maxLength` needs them, and they exhaust memory."""


def read_source(
    source: DatasetSource,
    *,
    token: str | None,
    endpoint: str | None,
    rows: int,
    max_row_bytes: int,
) -> Sample:
    """A sample of the source: a local file or folder when the name reads as a path, else a Hub dataset.

    Raises
    ------
    SpecError
        `DatasetNotFound` or `DatasetInvalid`.
    RetryLater
        For transient Hub errors.
    """
    name = source.name
    if looks_local(name):  # by its shape: a Hub-shaped name never touches the operator's filesystem
        path = Path(name).expanduser()
        if not path.exists():
            raise not_found(f"`{name}` does not exist: no such local file or folder")
        return sample_local(
            path, config=source.config, split=source.split, rows=rows, max_row_bytes=max_row_bytes
        )
    if not REPO_ID.match(name) or ".." in name or "--" in name:
        raise not_found(
            f"dataset `{name}` is neither a local path (`./name`) nor a Hub repo id (`owner/name`)"
        )
    from finetune_operator.validation.hub import sample_hub

    return sample_hub(
        name,
        config=source.config,
        split=source.split,
        revision=source.revision,
        token=token,
        endpoint=endpoint,
        rows=rows,
        max_row_bytes=max_row_bytes,
    )


def inspect_dataset(
    source: DatasetSource,
    *,
    token: str | None = None,
    methods: Iterable[str | Method] = METHODS,
    max_length: int = 1024,
    tokenizer: str | None = None,
    sample_rows: int = 1000,
    endpoint: str | None = None,
    answer_column: str | None = "answer",
    max_row_bytes: int = MAX_ROW_BYTES,
) -> DatasetReport:
    """Inspect a dataset and decide, per method, whether it can train as configured.

    Parameters
    ----------
    source
        The dataset (`spec.dataset`): name, config, split, revision, and the mapping the spec gives.
    token
        Hugging Face token for private or gated Hub datasets. It never appears in the report.
    methods
        Methods to decide for (every trainable method by default).
    max_length
        The job's `maxLength` in tokens, for the length statistics.
    tokenizer
        The model (local folder or Hub id) whose tokenizer counts tokens; None estimates (chars / 4).
    sample_rows
        How many rows to read and check.
    endpoint
        Hub endpoint (default: `HF_ENDPOINT` or huggingface.co).
    answer_column
        The column GRPO's Accuracy reward reads; None when no built-in reward needs one.
    max_row_bytes
        Rows larger than this are an error.

    Returns
    -------
    DatasetReport

    Raises
    ------
    SpecError
        `DatasetNotFound` (missing dataset, file, revision, config or split; private without a token) or
        `DatasetInvalid` (corrupt, truncated or empty data, rows that are not objects, enormous rows).
    RetryLater
        For transient Hub errors (5xx, 429, timeouts).
    """
    started = time.perf_counter()
    wanted = [str(m.value if isinstance(m, Method) else m).upper() for m in methods]
    unknown = [m for m in wanted if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; use {', '.join(METHODS)}")
    sample = read_source(
        source, token=token, endpoint=endpoint, rows=max(1, sample_rows), max_row_bytes=max_row_bytes
    )
    rows = sample.rows
    detection = detect(rows)
    given = RowMapping(source.conversion, source.columns)
    evaluator = Evaluator(rows, sample.total_rows, answer_column)
    verdicts = []
    findings: list[Finding] = []
    primary: Attempt | None = None
    for method in wanted:
        verdict, attempt = decide(method, evaluator, detection, given)
        verdicts.append(verdict)
        findings.extend(attempt.findings)
        if primary is None and verdict.verdict != Verdict.INCOMPATIBLE:
            primary = attempt
    findings.extend(_raw_findings(rows, sample.total_rows))
    lengths = length_stats(primary.rows if primary else rows, max_length, tokenizer)
    if lengths.over_max_length > 0:
        findings.append(
            _finding(
                "OverMaxLength",
                None,
                lengths.over_max_length,
                len(rows),
                sample.total_rows,
                f"longer than {max_length} tokens" + (" (estimated)" if lengths.estimated else ""),
            )
        )
    duplicate = next((f.share for f in findings if f.check == "DuplicateRows"), 0.0)
    layout = sample.layout
    return DatasetReport(
        dataset=source.name,
        config=None if layout.config == "default" and source.config is None else layout.config,
        split=layout.split,
        revision=sample.revision or source.revision,
        source=SourceInfo(
            kind=sample.kind,
            files=[f.path for f in layout.files[:20]],
            file_count=len(layout.files),
            file_format=sample.file_format,
            revision=sample.revision,
            configs=layout.configs,
            splits=layout.splits,
        ),
        rows=sample.total_rows,
        rows_estimated=sample.estimated,
        sampled_rows=len(rows),
        columns=[ColumnInfo(name=n, type=t) for n, t in sample.columns],
        format=detection.format,
        format_description=detection.description,
        verdicts=verdicts,
        findings=findings,
        duplicate_share=duplicate,
        lengths=lengths,
        warnings=_split_warnings(layout.split, layout.splits) + _warnings(findings, sample, lengths.note),
        elapsed_seconds=round(time.perf_counter() - started, 4),
    )


def _finding(
    check: str,
    method: str | None,
    share: float,
    n: int,
    total: int | None,
    detail: str,
    examples: list[int] | None = None,
) -> Finding:
    spec = CHECKS[check]
    return Finding(
        check=check,
        method=method,
        severity=spec.severity,
        message=f"{spec.message}: {detail}",
        sample_rows=round(share * n),
        share=round(share, 4),
        estimated_rows=None if total is None else round(share * total),
        examples=examples or [],
    )


def _raw_findings(rows: list[dict[str, Any]], total: int | None) -> list[Finding]:
    """Checks on the rows as read: duplicates and columns of mixed types."""
    out = []
    seen: set[str] = set()
    dupes: list[int] = []
    for i, row in enumerate(rows):
        key = json.dumps(row, sort_keys=True, default=str)
        if key in seen:
            dupes.append(i)
        seen.add(key)
    if dupes:
        out.append(
            _finding(
                "DuplicateRows",
                None,
                len(dupes) / len(rows),
                len(rows),
                total,
                f"the first is sampled row {dupes[0]}",
                dupes[:5],
            )
        )
    shapes: dict[str, Counter[str]] = {}
    for row in rows:
        for key, value in row.items():
            kind = shape(value)
            if kind != "null":
                shapes.setdefault(key, Counter())[kind] += 1
    for column, counter in shapes.items():
        if len(counter) > 1:
            _, *rest = counter.most_common()
            odd = sum(n for _, n in rest)
            kinds = ", ".join(f"{k} ({n})" for k, n in counter.most_common())
            out.append(
                _finding("MixedTypes", None, odd / len(rows), len(rows), total, f"`{column}` holds {kinds}")
            )
    return out


HELD_OUT_SPLITS = ("test", "validation", "valid", "eval", "dev")
"""Split names that by convention hold data kept out of training, to measure a model on."""


def _split_warnings(split: str, splits: list[str]) -> list[str]:
    """A warning when training on a split meant for evaluation (allowed: some datasets have no other)."""
    if split.lower() not in HELD_OUT_SPLITS:
        return []
    others = [s for s in splits if s != split and s.lower() not in HELD_OUT_SPLITS]
    fix = f"train on {names(others)} instead" if others else "the dataset has no other split"
    return [
        f"training on split `{split}`, which by convention is held out for evaluation: {fix}; a model "
        "judged on rows it trained on looks better than it is"
    ]


def _warnings(findings: list[Finding], sample: Sample, tokenizer_note: str | None) -> list[str]:
    lines = []
    for f in findings:
        if f.severity == Severity.INFO or is_fatal(f):
            continue  # a fatal finding is the verdict's reason already
        scope = f"{f.method}: " if f.method else ""
        scaled = f", ≈{f.estimated_rows} rows" if f.estimated_rows is not None else ""
        lines.append(f"{scope}{f.message} ({f.share:.1%} of sampled rows{scaled})")
    if sample.estimated:
        lines.append("the row count is estimated from file sizes")
    if tokenizer_note:
        lines.append(f"{tokenizer_note}; lengths are estimated")
    return lines
