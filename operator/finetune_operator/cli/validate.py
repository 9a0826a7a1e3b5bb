"""`ftjob validate DATASET`: can this dataset train with SFT, DPO or GRPO, and how to map it if not.

Exit codes: 0 when the requested methods (or, with none requested, at least one method) are Ready as
configured (the `--conversion`/`--column` mapping given counts); 1 when they need a mapping not given
or are incompatible; 2 for errors (missing dataset, bad files, bad arguments), explained on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import yaml

from finetune_operator.api.status import MethodVerdict, Verdict
from finetune_operator.errors import RetryLater, SpecError
from finetune_training.plan import ColumnMapping, Conversion, DatasetSource
from finetune_training.profiles import PROFILES

METHOD_CHOICES = tuple(m.value for m in PROFILES)
LABELS = {
    Verdict.READY: "READY",
    Verdict.NEEDS_MAPPING: "NEEDS MAPPING",
    Verdict.INCOMPATIBLE: "INCOMPATIBLE",
}


def register(subparsers: Any, name: str) -> None:
    """Add the `validate` subcommand."""
    p = subparsers.add_parser(
        name,
        help="check a dataset against SFT/DPO/GRPO/KTO before any GPU",
        description="Read a sample of a local or Hub dataset and say, per method, whether it can train "
        "(READY), needs a mapping (NEEDS MAPPING, with the YAML to paste into spec.dataset) or cannot "
        "(INCOMPATIBLE). The Hub token is read from HF_TOKEN.",
    )
    p.add_argument(
        "dataset", help="local file or folder (JSON, JSONL, Parquet, CSV) or Hub dataset `owner/name`"
    )
    p.add_argument(
        "--method",
        "-m",
        action="append",
        type=str.upper,
        choices=METHOD_CHOICES,
        help="method to check (repeatable)",
    )
    p.add_argument("--split", default="train", help="split to read (default: train)")
    p.add_argument("--config", help="dataset config (subset)")
    p.add_argument("--revision", help="Hub revision: branch, tag or commit")
    p.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="TARGET=SOURCE",
        help="rename, e.g. completion=response",
    )
    p.add_argument("--conversion", choices=[c.value for c in Conversion], help="named whole-row conversion")
    p.add_argument("--max-length", type=int, default=1024, help="maxLength in tokens (default 1024)")
    p.add_argument(
        "--tokenizer", help="model folder or Hub id whose tokenizer counts tokens (default: estimate)"
    )
    p.add_argument("--sample-rows", type=int, default=1000, help="rows to read and check (default 1000)")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    p.set_defaults(func=run)


def parse_columns(pairs: list[str]) -> ColumnMapping | None:
    """`target=source` pairs as a ColumnMapping.

    Raises
    ------
    ValueError
        For a pair without `=` or a target TRL does not use.
    """
    if not pairs:
        return None
    fields = set(ColumnMapping.model_fields)
    renames: dict[str, str] = {}
    for pair in pairs:
        target, sep, source = pair.partition("=")
        target, source = target.strip(), source.strip()
        if not sep or not target or not source:
            raise ValueError(f"`--column {pair}` must be TARGET=SOURCE, e.g. `completion=response`")
        if target not in fields:
            raise ValueError(
                f"`--column {pair}`: target `{target}` must be one of {', '.join(sorted(fields))}"
            )
        renames[target] = source
    return ColumnMapping(**renames)


def run(args: argparse.Namespace) -> int:
    """Validate and print; returns the exit code."""
    from finetune_operator.validation import inspect_dataset

    try:
        source = DatasetSource(
            name=args.dataset,
            split=args.split,
            config=args.config,
            revision=args.revision,
            conversion=Conversion(args.conversion) if args.conversion else None,
            columns=parse_columns(args.column),
        )
        if args.max_length < 1 or args.sample_rows < 1:
            raise ValueError("`--max-length` and `--sample-rows` must be positive")
        report = inspect_dataset(
            source,
            token=os.environ.get("HF_TOKEN") or None,
            methods=args.method or METHOD_CHOICES,
            max_length=args.max_length,
            tokenizer=args.tokenizer,
            sample_rows=args.sample_rows,
        )
    except SpecError as exc:
        print(f"error: {exc.reason}: {exc.message}", file=sys.stderr)
        return 2
    except RetryLater as exc:
        print(f"error: {exc.message} (transient: try again)", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line, not a traceback
        print(f"error: unexpected {type(exc).__name__} while validating: {exc}", file=sys.stderr)
        return 2
    if args.output == "json":
        print(report.to_json())
    else:
        print(render_text(report, source))
    ok = [v.verdict == Verdict.READY for v in report.verdicts]
    return 0 if (all(ok) if args.method else any(ok)) else 1


def mapping_yaml(source: DatasetSource, verdict: MethodVerdict) -> str:
    """The `dataset:` block to paste into a FineTuneJob spec for ``verdict``'s mapping."""
    block: dict[str, Any] = {"name": source.name}
    if source.config:
        block["config"] = source.config
    if source.split != "train":
        block["split"] = source.split
    if source.revision:
        block["revision"] = source.revision
    if verdict.conversion is not None:
        block["conversion"] = verdict.conversion.value
    if verdict.columns is not None:
        block["columns"] = verdict.columns.model_dump(by_alias=True, exclude_none=True)
    return yaml.safe_dump({"dataset": block}, sort_keys=False).rstrip()


def render_text(report: Any, source: DatasetSource) -> str:
    """The readable report."""
    lines = []
    where = f"{report.source.kind}, {report.source.file_format}, split {report.split}"
    if report.config:
        where += f", config {report.config}"
    lines.append(f"Dataset   {report.dataset}  ({where})")
    count = (
        "unknown"
        if report.rows is None
        else f"{report.rows:,}" + (" (estimated)" if report.rows_estimated else "")
    )
    lines.append(f"Rows      {count}; {report.sampled_rows:,} sampled")
    lines.append(f"Format    {report.format}: {report.format_description}")
    cols = ", ".join(f"{c.name} ({c.type})" for c in report.columns)
    lines.append(f"Columns   {cols if len(cols) < 300 else cols[:297] + '...'}")
    lines.append("")
    for v in report.verdicts:
        lines.append(f"{v.method:<5} {LABELS[v.verdict]:<14} {v.reason}")
    shown: set[str] = set()
    for v in report.verdicts:
        if v.verdict != Verdict.NEEDS_MAPPING:
            continue
        snippet = mapping_yaml(source, v)
        if snippet in shown:
            continue
        shown.add(snippet)
        users = ", ".join(
            w.method
            for w in report.verdicts
            if w.verdict == Verdict.NEEDS_MAPPING and mapping_yaml(source, w) == snippet
        )
        lines += ["", f"Mapping for {users} (paste into spec):", *("  " + ln for ln in snippet.splitlines())]
    if report.lengths is not None:
        ln = report.lengths
        how = f"tokenizer {ln.tokenizer}" if not ln.estimated else "estimated as characters / 4"
        lines += [
            "",
            f"Lengths   mean {ln.mean:.0f}, p50 {ln.p50}, p95 {ln.p95}, max {ln.max} tokens ({how}); "
            f"{ln.over_max_length:.1%} over maxLength {ln.max_length}",
        ]
    lines.append(f"Duplicates {report.duplicate_share:.1%} of sampled rows")
    if report.warnings:
        lines += ["", "Warnings", *(f"  - {w}" for w in report.warnings)]
    return "\n".join(lines)
