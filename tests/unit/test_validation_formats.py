"""Dataset validation on every example dataset, in every container we read (JSON, JSONL, Parquet, CSV)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from finetune_operator.api.status import Verdict
from finetune_operator.validation import DatasetReport, inspect_dataset
from finetune_training.plan import ColumnMapping, Conversion, DatasetSource
from tests.conftest import SHARED_DATASETS

R, N, X = Verdict.READY, Verdict.NEEDS_MAPPING, Verdict.INCOMPATIBLE

# file: (rows, format, {method: (verdict, conversion, renames)})
EXPECTED: dict[str, tuple[int, str, dict[str, tuple[Verdict, Conversion | None, dict[str, str]]]]] = {
    "alpaca_en_demo.json": (
        999,
        "alpaca",
        {"SFT": (N, Conversion.ALPACA, {}), "DPO": (X, None, {}), "GRPO": (X, None, {})},
    ),
    "c4_demo.jsonl": (300, "text", {"SFT": (R, None, {}), "DPO": (X, None, {}), "GRPO": (X, None, {})}),
    "dpo_en_demo.json": (
        300,
        "sharegpt-preference",
        {
            "SFT": (N, Conversion.SHAREGPT_PREFERENCE, {"chosen": "completion"}),
            "DPO": (N, Conversion.SHAREGPT_PREFERENCE, {}),
            "GRPO": (X, None, {}),
        },
    ),
    "glaive_toolcall_en_demo.json": (
        300,
        "sharegpt",
        {"SFT": (N, Conversion.SHAREGPT, {}), "DPO": (X, None, {}), "GRPO": (X, None, {})},
    ),
    "gsm8k_test.jsonl": (
        1319,
        "question-answer",
        {
            "SFT": (N, Conversion.QUESTION_ANSWER, {}),
            "DPO": (X, None, {}),
            "GRPO": (N, Conversion.QUESTION_ANSWER, {}),
        },
    ),
    "kto_en_demo.json": (
        300,
        "messages-label",
        {"SFT": (R, None, {}), "DPO": (X, None, {}), "GRPO": (X, None, {})},
    ),
    "v1_dpo_demo.jsonl": (
        10,
        "message-pairs",
        {
            "SFT": (N, Conversion.MESSAGE_PAIRS, {"chosen": "completion"}),
            "DPO": (N, Conversion.MESSAGE_PAIRS, {}),
            "GRPO": (X, None, {}),
        },
    ),
    "v1_sft_demo.jsonl": (
        500,
        "content-parts",
        {"SFT": (N, Conversion.CONTENT_PARTS, {}), "DPO": (X, None, {}), "GRPO": (X, None, {})},
    ),
}


def load_rows(path: Path) -> list[dict[str, Any]]:
    """All rows of a shared file."""
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return list(json.loads(path.read_text()))


def check_expected(report: DatasetReport, name: str) -> None:
    rows, fmt, verdicts = EXPECTED[name]
    assert report.rows == rows
    assert not report.rows_estimated
    assert report.format == fmt
    for method, (verdict, conversion, renames) in verdicts.items():
        found = report.verdict(method)
        assert found is not None
        assert found.verdict == verdict, (method, found.reason)
        assert found.reason
        assert found.conversion == conversion, method
        assert (found.columns.renames() if found.columns else {}) == renames, method


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_dataset_verdicts(name: str) -> None:
    report = inspect_dataset(DatasetSource(name=str(SHARED_DATASETS / name)))
    check_expected(report, name)
    assert report.sampled_rows == min(1000, EXPECTED[name][0])
    assert report.lengths is not None and report.lengths.estimated
    assert report.source.kind == "Local"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_suggested_mapping_makes_the_method_ready(name: str) -> None:
    """Feeding a NeedsMapping verdict's mapping back in (as spec.dataset would) gives Ready."""
    report = inspect_dataset(DatasetSource(name=str(SHARED_DATASETS / name)))
    for v in report.verdicts:
        if v.verdict != Verdict.NEEDS_MAPPING:
            continue
        again = inspect_dataset(
            DatasetSource(name=str(SHARED_DATASETS / name), conversion=v.conversion, columns=v.columns),
            methods=[v.method],
        )
        verdict = again.verdict(v.method)
        assert verdict is not None and verdict.verdict == Verdict.READY, verdict
        assert verdict.conversion == v.conversion


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_verdicts_from_parquet(name: str, tmp_path: Path) -> None:
    rows = load_rows(SHARED_DATASETS / name)
    path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=100)
    report = inspect_dataset(DatasetSource(name=str(path)))
    check_expected(report, name)
    assert report.source.file_format == "parquet"
    assert {c.name for c in report.columns} == set(rows[0])


@pytest.mark.parametrize("name", ["alpaca_en_demo.json", "c4_demo.jsonl", "gsm8k_test.jsonl"])
def test_same_verdicts_from_csv(name: str, tmp_path: Path) -> None:
    rows = load_rows(SHARED_DATASETS / name)
    path = tmp_path / "data.csv"
    pacsv.write_csv(pa.Table.from_pylist(rows), path)
    check_expected(inspect_dataset(DatasetSource(name=str(path))), name)


@pytest.mark.parametrize("name", ["v1_sft_demo.jsonl", "gsm8k_test.jsonl"])
def test_jsonl_as_json_array_and_json_lines_in_a_json_file(name: str, tmp_path: Path) -> None:
    rows = load_rows(SHARED_DATASETS / name)
    array = tmp_path / "array.json"
    array.write_text(json.dumps(rows))
    check_expected(inspect_dataset(DatasetSource(name=str(array))), name)
    lines = tmp_path / "lines.json"
    shutil.copy(SHARED_DATASETS / name, lines)
    check_expected(inspect_dataset(DatasetSource(name=str(lines))), name)


def test_folder_with_splits_by_file_name(tmp_path: Path) -> None:
    src = SHARED_DATASETS / "gsm8k_test.jsonl"
    lines = src.read_text().splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join(lines[:1000]) + "\n")
    (tmp_path / "test.jsonl").write_text("\n".join(lines[1000:]) + "\n")
    train = inspect_dataset(DatasetSource(name=str(tmp_path)))
    assert train.rows == 1000 and train.split == "train"
    test = inspect_dataset(DatasetSource(name=str(tmp_path), split="test"))
    assert test.rows == 319
    assert test.source.splits == ["test", "train"]


def test_folder_of_sharded_parquet_counts_rows_from_footers(tmp_path: Path) -> None:
    rows = load_rows(SHARED_DATASETS / "kto_en_demo.json")
    data = tmp_path / "data"
    data.mkdir()
    for i, part in enumerate((rows[:100], rows[100:250], rows[250:])):
        pq.write_table(pa.Table.from_pylist(part), data / f"train-{i:05d}-of-00003.parquet")
    report = inspect_dataset(DatasetSource(name=str(tmp_path)), sample_rows=50)
    assert report.rows == 300 and not report.rows_estimated
    assert report.sampled_rows == 50
    assert report.source.file_count == 3


def test_folder_with_readme_configs(tmp_path: Path) -> None:
    shutil.copy(SHARED_DATASETS / "alpaca_en_demo.json", tmp_path / "alpaca.json")
    (tmp_path / "math").mkdir()
    shutil.copy(SHARED_DATASETS / "gsm8k_test.jsonl", tmp_path / "math" / "test.jsonl")
    (tmp_path / "README.md").write_text(
        "---\nconfigs:\n- config_name: instruct\n  data_files: alpaca.json\n  default: true\n"
        "- config_name: math\n  data_files:\n  - split: test\n    path: math/*.jsonl\n---\n# card\n"
    )
    default = inspect_dataset(DatasetSource(name=str(tmp_path)))
    assert default.config == "instruct" and default.format == "alpaca"
    math = inspect_dataset(DatasetSource(name=str(tmp_path), config="math", split="test"))
    assert math.format == "question-answer" and math.rows == 1319
    assert math.source.configs == ["instruct", "math"]


def test_large_jsonl_row_count_is_an_estimate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import finetune_operator.validation.local as local

    monkeypatch.setattr(local, "FULL_READ_BYTES", 1024)  # treat the file as too large to count
    path = tmp_path / "big.jsonl"
    shutil.copy(SHARED_DATASETS / "gsm8k_test.jsonl", path)
    report = inspect_dataset(DatasetSource(name=str(path)), sample_rows=100)
    assert report.rows_estimated
    assert report.rows is not None and 1000 < report.rows < 1700
    assert any("estimated" in w for w in report.warnings)
    assert report.summary().rows == report.rows


def test_renamed_columns_are_suggested(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"query": f"q{i}", "response": f"r{i}"}) + "\n" for i in range(20)))
    report = inspect_dataset(DatasetSource(name=str(path)), methods=["SFT", "GRPO"])
    sft = report.verdict("SFT")
    assert sft is not None and sft.verdict == N
    assert sft.columns == ColumnMapping(prompt="query", completion="response")
    ready = inspect_dataset(DatasetSource(name=str(path), columns=sft.columns), methods=["SFT"])
    assert ready.ready("SFT")


def test_conversation_under_another_name(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    path.write_text("".join(json.dumps({"dialog": turns, "id": i}) + "\n" for i in range(5)))
    sft = inspect_dataset(DatasetSource(name=str(path)), methods=["SFT"]).verdict("SFT")
    assert sft is not None and sft.verdict == N and sft.columns == ColumnMapping(messages="dialog")


def test_a_mapping_given_to_data_that_needs_none() -> None:
    source = DatasetSource(name=str(SHARED_DATASETS / "c4_demo.jsonl"), conversion=Conversion.ALPACA)
    sft = inspect_dataset(source, methods=["SFT"]).verdict("SFT")
    assert sft is not None and sft.verdict == N
    assert sft.conversion is None and sft.columns is None
    assert "does not work" in sft.reason and "remove `conversion` and `columns`" in sft.reason


def test_wrong_mapping_given_is_reported_with_the_right_one() -> None:
    source = DatasetSource(name=str(SHARED_DATASETS / "alpaca_en_demo.json"), conversion=Conversion.SHAREGPT)
    sft = inspect_dataset(source, methods=["SFT"]).verdict("SFT")
    assert sft is not None and sft.verdict == N
    assert sft.conversion == Conversion.ALPACA
    assert "does not work" in sft.reason and "no `conversations` column" in sft.reason
