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
from tests.example_data import DATASETS, FILES

R, N, X = Verdict.READY, Verdict.NEEDS_MAPPING, Verdict.INCOMPATIBLE

# file: (rows, format, {method: (verdict, conversion, renames)})
EXPECTED: dict[str, tuple[int, str, dict[str, tuple[Verdict, Conversion | None, dict[str, str]]]]] = {
    "alpaca.json": (
        60,
        "alpaca",
        {"SFT": (N, Conversion.ALPACA, {}), "DPO": (X, None, {}), "GRPO": (X, None, {})},
    ),
    "text.jsonl": (40, "text", {"SFT": (R, None, {}), "DPO": (X, None, {}), "GRPO": (X, None, {})}),
    "sharegpt.json": (
        40,
        "sharegpt",
        {"SFT": (N, Conversion.SHAREGPT, {}), "DPO": (X, None, {}), "GRPO": (X, None, {})},
    ),
    "sharegpt_tools.json": (
        40,
        "sharegpt",
        {"SFT": (N, Conversion.SHAREGPT, {}), "DPO": (X, None, {}), "GRPO": (X, None, {})},
    ),
    "sharegpt_preference.json": (
        40,
        "sharegpt-preference",
        {
            "SFT": (N, Conversion.SHAREGPT_PREFERENCE, {"chosen": "completion"}),
            "DPO": (N, Conversion.SHAREGPT_PREFERENCE, {}),
            "GRPO": (X, None, {}),
        },
    ),
    "messages.jsonl": (40, "messages", {"SFT": (R, None, {}), "DPO": (X, None, {}), "GRPO": (X, None, {})}),
    "messages_tools.jsonl": (
        40,
        "messages",
        {"SFT": (R, None, {}), "DPO": (X, None, {}), "GRPO": (X, None, {})},
    ),
    "content_parts.jsonl": (
        40,
        "content-parts",
        {"SFT": (N, Conversion.CONTENT_PARTS, {}), "DPO": (X, None, {}), "GRPO": (X, None, {})},
    ),
    "prompt_completion.jsonl": (
        40,
        "prompt-completion",
        {"SFT": (R, None, {}), "DPO": (X, None, {}), "GRPO": (X, None, {})},
    ),
    "preference_explicit.jsonl": (
        40,
        "preference",
        {"SFT": (N, None, {"chosen": "completion"}), "DPO": (R, None, {}), "GRPO": (X, None, {})},
    ),
    "preference_implicit.jsonl": (
        40,
        "preference",
        {"SFT": (N, None, {"chosen": "messages"}), "DPO": (R, None, {}), "GRPO": (X, None, {})},
    ),
    "message_pairs.jsonl": (
        24,
        "message-pairs",
        {
            "SFT": (N, Conversion.MESSAGE_PAIRS, {"chosen": "completion"}),
            "DPO": (N, Conversion.MESSAGE_PAIRS, {}),
            "GRPO": (X, None, {}),
        },
    ),
    "question_answer.jsonl": (
        60,
        "question-answer",
        {
            "SFT": (N, Conversion.QUESTION_ANSWER, {}),
            "DPO": (X, None, {}),
            "GRPO": (N, Conversion.QUESTION_ANSWER, {}),
        },
    ),
    "unpaired_preference.jsonl": (
        40,
        "prompt-completion-label",
        # Rows labelled false are bad answers: SFT would imitate them.
        {"SFT": (X, None, {}), "DPO": (X, None, {}), "GRPO": (X, None, {}), "KTO": (R, None, {})},
    ),
    "messages_label.json": (
        40,
        "messages-label",
        {"SFT": (X, None, {}), "DPO": (X, None, {}), "GRPO": (X, None, {})},
    ),
    "prompts.jsonl": (
        30,
        "prompt-only",
        {"SFT": (X, None, {}), "DPO": (X, None, {}), "GRPO": (R, None, {})},
    ),
}


def test_every_example_file_is_expected() -> None:
    """Each file the project ships is checked here, so a new format gets its verdicts pinned."""
    assert sorted(EXPECTED) == sorted(FILES)


def load_rows(path: Path) -> list[dict[str, Any]]:
    """All rows of an example file."""
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
def test_example_dataset_verdicts(name: str) -> None:
    report = inspect_dataset(DatasetSource(name=str(DATASETS / name)))
    check_expected(report, name)
    assert report.sampled_rows == min(1000, EXPECTED[name][0])
    assert report.lengths is not None and report.lengths.estimated
    assert report.source.kind == "Local"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_suggested_mapping_makes_the_method_ready(name: str) -> None:
    """Feeding a NeedsMapping verdict's mapping back in (as spec.dataset would) gives Ready."""
    report = inspect_dataset(DatasetSource(name=str(DATASETS / name)))
    for v in report.verdicts:
        if v.verdict != Verdict.NEEDS_MAPPING:
            continue
        again = inspect_dataset(
            DatasetSource(name=str(DATASETS / name), conversion=v.conversion, columns=v.columns),
            methods=[v.method],
        )
        verdict = again.verdict(v.method)
        assert verdict is not None and verdict.verdict == Verdict.READY, verdict
        assert verdict.conversion == v.conversion


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_verdicts_from_parquet(name: str, tmp_path: Path) -> None:
    rows = load_rows(DATASETS / name)
    path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=100)
    report = inspect_dataset(DatasetSource(name=str(path)))
    check_expected(report, name)
    assert report.source.file_format == "parquet"
    assert {c.name for c in report.columns} == set(rows[0])


@pytest.mark.parametrize("name", ["alpaca.json", "text.jsonl", "question_answer.jsonl"])
def test_same_verdicts_from_csv(name: str, tmp_path: Path) -> None:
    rows = load_rows(DATASETS / name)
    path = tmp_path / "data.csv"
    pacsv.write_csv(pa.Table.from_pylist(rows), path)
    check_expected(inspect_dataset(DatasetSource(name=str(path))), name)


@pytest.mark.parametrize("name", ["content_parts.jsonl", "question_answer.jsonl"])
def test_jsonl_as_json_array_and_json_lines_in_a_json_file(name: str, tmp_path: Path) -> None:
    rows = load_rows(DATASETS / name)
    array = tmp_path / "array.json"
    array.write_text(json.dumps(rows))
    check_expected(inspect_dataset(DatasetSource(name=str(array))), name)
    lines = tmp_path / "lines.json"
    shutil.copy(DATASETS / name, lines)
    check_expected(inspect_dataset(DatasetSource(name=str(lines))), name)


def test_folder_with_splits_by_file_name(tmp_path: Path) -> None:
    src = DATASETS / "question_answer.jsonl"
    lines = src.read_text().splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join(lines[:45]) + "\n")
    (tmp_path / "test.jsonl").write_text("\n".join(lines[45:]) + "\n")
    train = inspect_dataset(DatasetSource(name=str(tmp_path)))
    assert train.rows == 45 and train.split == "train"
    test = inspect_dataset(DatasetSource(name=str(tmp_path), split="test"))
    assert test.rows == 15
    assert test.source.splits == ["test", "train"]


def test_folder_of_sharded_parquet_counts_rows_from_footers(tmp_path: Path) -> None:
    rows = load_rows(DATASETS / "messages_label.json")
    data = tmp_path / "data"
    data.mkdir()
    for i, part in enumerate((rows[:10], rows[10:25], rows[25:])):
        pq.write_table(pa.Table.from_pylist(part), data / f"train-{i:05d}-of-00003.parquet")
    report = inspect_dataset(DatasetSource(name=str(tmp_path)), sample_rows=15)
    assert report.rows == 40 and not report.rows_estimated
    assert report.sampled_rows == 15
    assert report.source.file_count == 3


def test_folder_with_readme_configs(tmp_path: Path) -> None:
    shutil.copy(DATASETS / "alpaca.json", tmp_path / "alpaca.json")
    (tmp_path / "math").mkdir()
    shutil.copy(DATASETS / "question_answer.jsonl", tmp_path / "math" / "test.jsonl")
    (tmp_path / "README.md").write_text(
        "---\nconfigs:\n- config_name: instruct\n  data_files: alpaca.json\n  default: true\n"
        "- config_name: math\n  data_files:\n  - split: test\n    path: math/*.jsonl\n---\n# card\n"
    )
    default = inspect_dataset(DatasetSource(name=str(tmp_path)))
    assert default.config == "instruct" and default.format == "alpaca"
    math = inspect_dataset(DatasetSource(name=str(tmp_path), config="math", split="test"))
    assert math.format == "question-answer" and math.rows == 60
    assert math.source.configs == ["instruct", "math"]


def test_large_jsonl_row_count_is_an_estimate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import finetune_operator.validation.local as local

    monkeypatch.setattr(local, "FULL_READ_BYTES", 1024)  # treat the file as too large to count
    path = tmp_path / "big.jsonl"
    shutil.copy(DATASETS / "question_answer.jsonl", path)
    report = inspect_dataset(DatasetSource(name=str(path)), sample_rows=20)
    assert report.rows_estimated
    assert report.rows is not None and 40 < report.rows < 80  # 60 rows
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
    source = DatasetSource(name=str(DATASETS / "text.jsonl"), conversion=Conversion.ALPACA)
    sft = inspect_dataset(source, methods=["SFT"]).verdict("SFT")
    assert sft is not None and sft.verdict == N
    assert sft.conversion is None and sft.columns is None
    assert "does not work" in sft.reason and "remove `conversion` and `columns`" in sft.reason


def test_wrong_mapping_given_is_reported_with_the_right_one() -> None:
    source = DatasetSource(name=str(DATASETS / "alpaca.json"), conversion=Conversion.SHAREGPT)
    sft = inspect_dataset(source, methods=["SFT"]).verdict("SFT")
    assert sft is not None and sft.verdict == N
    assert sft.conversion == Conversion.ALPACA
    assert "does not work" in sft.reason and "no `conversations` column" in sft.reason


def test_the_sample_spreads_over_the_files_so_a_late_problem_shows(tmp_path: Path) -> None:
    """Twenty files of 100 rows: the sample (1,000 rows) reads the first and the last ones too, so rows
    marked bad in the last file (`label: false`) turn SFT Incompatible before any GPU is allocated."""
    folder = tmp_path / "data"
    folder.mkdir()
    good = {"prompt": "Say hi.", "completion": "Hi!", "label": True}
    bad = {"prompt": "Say hi.", "completion": "Go away.", "label": False}
    for i in range(20):
        row = bad if i == 19 else good
        (folder / f"part-{i:02d}.jsonl").write_text("".join(json.dumps(row) + "\n" for _ in range(100)))
    report = inspect_dataset(DatasetSource(name=str(folder)), methods=["SFT", "KTO"])
    assert report.rows is not None and abs(report.rows - 2000) < 100  # estimated from file sizes
    assert report.verdict("SFT").verdict == Verdict.INCOMPATIBLE
    assert "label: false" in report.verdict("SFT").reason
    assert report.verdict("KTO").verdict == Verdict.READY


def test_a_parquet_sample_reads_later_row_groups_too(tmp_path: Path) -> None:
    """One file, ten row groups of 500 rows: rows marked bad only in the last row group still show."""
    good = {"prompt": "Say hi.", "completion": "Hi!", "label": True}
    bad = {"prompt": "Say hi.", "completion": "Go away.", "label": False}
    table = pa.Table.from_pylist([good] * 4500 + [bad] * 500)
    path = tmp_path / "data.parquet"
    pq.write_table(table, path, row_group_size=500)
    assert pq.ParquetFile(path).metadata.num_row_groups == 10
    report = inspect_dataset(DatasetSource(name=str(path)), methods=["SFT"])
    assert report.rows == 5000
    assert report.verdict("SFT").verdict == Verdict.INCOMPATIBLE
