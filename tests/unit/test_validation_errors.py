"""Bad input: a clear SpecError naming the problem, never a traceback."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finetune_operator.errors import SpecError
from finetune_operator.validation import inspect_dataset
from finetune_operator.validation.readers import MIB, read_file
from finetune_training.plan import DatasetSource
from tests.example_data import DATASETS


def error(name: str | Path, **kwargs: object) -> SpecError:
    source_kwargs = {k: kwargs.pop(k) for k in ("split", "config") if k in kwargs}
    with pytest.raises(SpecError) as info:
        inspect_dataset(DatasetSource(name=str(name), **source_kwargs), **kwargs)  # type: ignore[arg-type]
    return info.value


def test_missing_local_file() -> None:
    err = error("/nonexistent/data.jsonl")
    assert err.reason == "DatasetNotFound" and "does not exist" in err.message


def test_name_that_is_neither_a_path_nor_a_repo_id() -> None:
    err = error("not a dataset!")
    assert err.reason == "DatasetNotFound" and "Hub repo id" in err.message


def test_unsupported_file_type(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert "not a data file" in error(tmp_path / "notes.txt").message


def test_wrong_split_of_a_file_and_of_a_folder(tmp_path: Path) -> None:
    err = error(DATASETS / "text.jsonl", split="validation")
    assert err.reason == "DatasetNotFound" and "only the split `train`" in err.message
    shutil.copy(DATASETS / "text.jsonl", tmp_path / "train.jsonl")
    shutil.copy(DATASETS / "text.jsonl", tmp_path / "test.jsonl")
    err = error(tmp_path, split="validation")
    assert "no split `validation`" in err.message and "`test`, `train`" in err.message


def test_wrong_config(tmp_path: Path) -> None:
    shutil.copy(DATASETS / "text.jsonl", tmp_path / "c4.jsonl")
    (tmp_path / "README.md").write_text("---\nconfigs:\n- config_name: en\n  data_files: c4.jsonl\n---\n")
    err = error(tmp_path, config="fr")
    assert err.reason == "DatasetNotFound" and "no config `fr`" in err.message and "`en`" in err.message


def test_several_configs_and_none_chosen(tmp_path: Path) -> None:
    shutil.copy(DATASETS / "text.jsonl", tmp_path / "c4.jsonl")
    (tmp_path / "README.md").write_text(
        "---\nconfigs:\n- config_name: a\n  data_files: c4.jsonl\n"
        "- config_name: b\n  data_files: c4.jsonl\n---\n"
    )
    assert "several configs" in error(tmp_path).message


def test_folder_without_data_files(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# nothing here")
    (tmp_path / "secret-notes.txt").write_text("x")
    err = error(tmp_path)
    assert err.reason == "DatasetInvalid" and "no data files (.parquet, .jsonl" in err.message
    # The message goes to status and Events: a count, never the folder's file names.
    assert "2 other files" in err.message
    assert "secret-notes" not in err.message and "README" not in err.message


def test_corrupt_parquet(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"this is not parquet at all" * 10)
    err = error(tmp_path / "bad.parquet")
    assert err.reason == "DatasetInvalid" and "cannot be read as parquet" in err.message


def test_truncated_parquet(tmp_path: Path) -> None:
    buf = io.BytesIO()
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(1000)]}), buf)
    (tmp_path / "cut.parquet").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert error(tmp_path / "cut.parquet").reason == "DatasetInvalid"


def test_truncated_jsonl(tmp_path: Path) -> None:
    data = (DATASETS / "question_answer.jsonl").read_bytes()
    (tmp_path / "cut.jsonl").write_bytes(data[: len(data) - 100])
    whole = error(tmp_path / "cut.jsonl", sample_rows=5000)
    assert "line 60" in whole.message and "truncated" in whole.message
    sampled = error(tmp_path / "cut.jsonl", sample_rows=10)  # the tail is checked without reading it all
    assert "truncated" in sampled.message


def test_truncated_json_array(tmp_path: Path) -> None:
    data = (DATASETS / "alpaca.json").read_bytes()
    (tmp_path / "cut.json").write_bytes(data[: len(data) // 2])
    err = error(tmp_path / "cut.json")
    assert err.reason == "DatasetInvalid" and "truncated" in err.message


def test_invalid_json_line(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"text": "a"}\n{"text": oops}\n{"text": "c"}\n')
    assert "line 2" in error(tmp_path / "d.jsonl").message


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps([{"text": "a"}, {"text": "b"}]).encode())
    assert inspect_dataset(DatasetSource(name=str(tmp_path / "bom.json"))).rows == 2


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_bytes('{"text": "caf\xe9"}\n'.encode("latin-1"))
    assert error(tmp_path / "d.jsonl").reason == "DatasetInvalid"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.jsonl", ""),
        ("empty.json", "[]"),
        ("blank.jsonl", "\n\n"),
        ("header.csv", "prompt,completion\n"),
    ],
)
def test_empty_datasets(tmp_path: Path, name: str, content: str) -> None:
    (tmp_path / name).write_text(content)
    err = error(tmp_path / name)
    assert err.reason == "DatasetInvalid" and "no rows" in err.message


def test_empty_parquet(tmp_path: Path) -> None:
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp_path / "e.parquet")
    assert "no rows" in error(tmp_path / "e.parquet").message


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"text": "a"}\n[1, 2]\n', "line 2 of"),
        ('["a", "b"]', "item 0 of"),
        ('[{"text": "a"}, null]', "item 1 of"),
        ('"just a string"', "JSON array of rows or JSON Lines"),
    ],
)
def test_rows_that_are_not_objects(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / "d.json").write_text(content)
    err = error(tmp_path / "d.json")
    assert err.reason == "DatasetInvalid" and needle in err.message


def test_one_json_object_holding_the_rows(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text(json.dumps({"version": 1, "data": [{"text": "a"}]}, indent=2))
    err = error(tmp_path / "d.json")
    assert "one JSON object" in err.message and "`data`" in err.message


def test_enormous_rows(tmp_path: Path) -> None:
    big = "x" * (17 * MIB)
    (tmp_path / "big.jsonl").write_text(json.dumps({"text": "ok"}) + "\n" + json.dumps({"text": big}) + "\n")
    err = error(tmp_path / "big.jsonl")  # the default limit, 16 MiB
    assert err.reason == "DatasetInvalid" and "line 2" in err.message and "MiB" in err.message
    pq.write_table(pa.table({"text": ["ok", "y" * (2 * MIB)]}), tmp_path / "big.parquet")
    assert "row 1" in error(tmp_path / "big.parquet", max_row_bytes=MIB).message
    (tmp_path / "big.json").write_text(json.dumps([{"text": "ok"}, {"text": "z" * (2 * MIB)}]))
    assert "item 1" in error(tmp_path / "big.json", max_row_bytes=MIB).message


def _opener(path: Path) -> Callable[[], BinaryIO]:
    return lambda: path.open("rb")


def test_streamed_json_array_reads_only_the_sample(tmp_path: Path) -> None:
    """Large JSON arrays are decoded item by item; the count is then an estimate."""
    path = DATASETS / "alpaca.json"
    got = read_file(
        _opener(path), path.name, path.stat().st_size, rows=20, max_row_bytes=MIB, full_read_bytes=0
    )
    assert len(got.rows) == 20 and got.num_rows is None
    assert got.estimated_rows is not None and 40 < got.estimated_rows < 80  # 60 rows
    assert got.rows[0]["instruction"] == "Explain what a Kubernetes Deployment does."


def test_streamed_json_array_errors(tmp_path: Path) -> None:
    data = (DATASETS / "alpaca.json").read_bytes()
    cut = tmp_path / "cut.json"
    cut.write_bytes(data[:5000])
    with pytest.raises(SpecError, match="truncated"):
        read_file(_opener(cut), "cut.json", 5000, rows=100, max_row_bytes=MIB, full_read_bytes=0)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"text": "a"} {"text": "b"}]')
    with pytest.raises(SpecError, match="no `,` or `]`"):
        read_file(
            _opener(broken),
            "broken.json",
            broken.stat().st_size,
            rows=10,
            max_row_bytes=MIB,
            full_read_bytes=0,
        )
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps([{"text": "w" * (3 * MIB)}]))
    with pytest.raises(SpecError, match="item 0"):
        read_file(
            _opener(huge), "huge.json", huge.stat().st_size, rows=10, max_row_bytes=MIB, full_read_bytes=0
        )
    whole = tmp_path / "small.json"
    whole.write_text(json.dumps([{"text": "a"}, {"text": "b"}]))
    got = read_file(
        _opener(whole), "small.json", whole.stat().st_size, rows=10, max_row_bytes=MIB, full_read_bytes=0
    )
    assert got.num_rows == 2 and [r["text"] for r in got.rows] == ["a", "b"]
