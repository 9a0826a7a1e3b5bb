"""The report's JSON form is a stable schema; `summary()` is what status stores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from finetune_operator.api.status import ValidationSummary, Verdict
from finetune_operator.validation import DatasetReport, inspect_dataset
from finetune_training.plan import DatasetSource
from tests.example_data import DATASETS

SCHEMA = Path(__file__).parent / "data" / "dataset_report.schema.json"

TOP_LEVEL = {
    "apiVersion", "kind", "dataset", "config", "split", "revision", "source", "rows", "rowsEstimated",
    "sampledRows", "columns", "format", "formatDescription", "verdicts", "findings", "duplicateShare",
    "lengths", "warnings", "elapsedSeconds",
}  # fmt: skip


def test_schema_matches_the_pinned_file() -> None:
    """Changing the JSON form is a decision: regenerate the file (fields may only be added)."""
    pinned = json.loads(SCHEMA.read_text())
    current = json.loads(json.dumps(DatasetReport.model_json_schema(by_alias=True), sort_keys=True))
    assert current == pinned


def test_json_form_has_every_key_in_camel_case() -> None:
    report = inspect_dataset(DatasetSource(name=str(DATASETS / "sharegpt_preference.json")))
    data = json.loads(report.to_json())
    assert set(data) == TOP_LEVEL
    assert data["kind"] == "DatasetReport" and data["apiVersion"] == "finetune.dev/v1alpha1"
    assert set(data["lengths"]) >= {"maxLength", "estimated", "mean", "p50", "p95", "max", "overMaxLength"}
    sft = next(v for v in data["verdicts"] if v["method"] == "SFT")
    assert sft["verdict"] == "NeedsMapping" and sft["conversion"] == "ShareGPTPreference"
    assert sft["columns"]["completion"] == "chosen"
    assert DatasetReport.model_validate(data) == report  # round trip


def test_summary_for_status() -> None:
    report = inspect_dataset(DatasetSource(name=str(DATASETS / "text.jsonl")), methods=["SFT", "DPO"])
    summary = report.summary(max_warnings=1)
    assert isinstance(summary, ValidationSummary)
    assert summary.rows == 40 and summary.format == "text" and summary.split == "train"
    assert [(v.method, v.verdict) for v in summary.verdicts] == [
        ("SFT", Verdict.READY),
        ("DPO", Verdict.INCOMPATIBLE),
    ]
    assert len(summary.warnings) == 1 and summary.mean_tokens is not None and summary.mean_tokens > 100
    assert "findings" not in summary.wire()


def test_local_validation_imports_no_heavy_library() -> None:
    """Validating a file loads no torch, transformers, datasets or Hub client (the operator stays light)."""
    code = (
        "import sys\n"
        "from finetune_operator.validation import inspect_dataset\n"
        "from finetune_training.plan import DatasetSource\n"
        f"inspect_dataset(DatasetSource(name={str(DATASETS / 'text.jsonl')!r}))\n"
        "heavy = ('torch', 'transformers', 'datasets', 'huggingface_hub')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
