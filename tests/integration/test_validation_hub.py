"""Validation of Hub datasets through the real `huggingface_hub` client and the local Hub stand-in."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from finetune_operator.api.status import Verdict
from finetune_operator.cli.main import main
from finetune_operator.errors import RetryLater, SpecError
from finetune_operator.validation import DatasetReport, inspect_dataset
from finetune_training.plan import Conversion, DatasetSource
from tests.example_data import DATASETS
from tests.hub import DEFAULT_TOKEN, client_config, start_hub

pytestmark = pytest.mark.hub

CARD = """---
configs:
- config_name: main
  data_files:
  - split: test
    path: main/test.jsonl
  default: true
- config_name: tools
  data_files:
  - split: train
    path: tools/*.json
---
# A private dataset with two configs
"""


def parquet_bytes(rows: list[dict[str, Any]], row_group_size: int = 200) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf, row_group_size=row_group_size)
    return buf.getvalue()


@pytest.fixture(scope="module")
def hub() -> Iterator[Any]:
    """A stand-in with four datasets: public Parquet splits, private configs, a branch, a gated one."""
    from huggingface_hub import CommitOperationAdd, HfApi

    alpaca = json.loads((DATASETS / "alpaca.json").read_text())
    with start_hub() as server, client_config(server):
        api = HfApi(endpoint=server.url, token=DEFAULT_TOKEN)
        api.create_repo("tester/alpaca", repo_type="dataset")
        api.create_commit(
            "tester/alpaca",
            repo_type="dataset",
            commit_message="data",
            operations=[
                CommitOperationAdd("data/train-00000-of-00002.parquet", parquet_bytes(alpaca[:30])),
                CommitOperationAdd("data/train-00001-of-00002.parquet", parquet_bytes(alpaca[30:50])),
                CommitOperationAdd("data/test-00000-of-00001.parquet", parquet_bytes(alpaca[50:])),
            ],
        )
        api.create_branch("tester/alpaca", branch="text-only", repo_type="dataset")
        api.upload_file(
            path_or_fileobj=(DATASETS / "text.jsonl").read_bytes(),
            path_in_repo="train.jsonl",
            repo_id="tester/alpaca",
            repo_type="dataset",
            revision="text-only",
        )
        api.delete_folder("data", repo_id="tester/alpaca", repo_type="dataset", revision="text-only")

        api.create_repo("tester/private-mix", repo_type="dataset", private=True)
        api.create_commit(
            "tester/private-mix",
            repo_type="dataset",
            commit_message="data",
            operations=[
                CommitOperationAdd("README.md", CARD.encode()),
                CommitOperationAdd("main/test.jsonl", (DATASETS / "question_answer.jsonl").read_bytes()),
                CommitOperationAdd("tools/part.json", (DATASETS / "sharegpt_tools.json").read_bytes()),
            ],
        )

        api.create_repo("tester/preference", repo_type="dataset")
        api.upload_file(
            path_or_fileobj=(DATASETS / "sharegpt_preference.json").read_bytes(),
            path_in_repo="dpo.json",
            repo_id="tester/preference",
            repo_type="dataset",
        )
        server.store.update_settings("dataset", "tester/preference", gated="manual")
        csv = io.BytesIO()
        pacsv.write_csv(pa.Table.from_pylist(alpaca), csv)
        api.create_repo("tester/csv", repo_type="dataset")
        api.upload_file(
            path_or_fileobj=csv.getvalue(),
            path_in_repo="train.csv",
            repo_id="tester/csv",
            repo_type="dataset",
        )
        api.create_repo("tester/script-only", repo_type="dataset")
        api.upload_file(
            path_or_fileobj=b"import datasets\n",
            path_in_repo="script_only.py",
            repo_id="tester/script-only",
            repo_type="dataset",
        )
        server.tokens.add("hf_other_reader", "other", role="read")
        yield server


def inspect(
    hub: Any, name: str, token: str | None = DEFAULT_TOKEN, sample_rows: int = 1000, **source: Any
) -> DatasetReport:
    return inspect_dataset(
        DatasetSource(name=name, **source), token=token, endpoint=hub.url, sample_rows=sample_rows
    )


def spec_error(hub: Any, name: str, token: str | None = DEFAULT_TOKEN, **source: Any) -> SpecError:
    with pytest.raises(SpecError) as info:
        inspect(hub, name, token, **source)
    return info.value


def test_parquet_shards_by_split_name(hub: Any) -> None:
    report = inspect(hub, "tester/alpaca", token=None)
    assert report.source.kind == "Hub" and report.source.file_format == "parquet"
    assert report.rows == 50 and not report.rows_estimated  # two footers, 30 + 20
    assert report.source.splits == ["test", "train"] and report.source.file_count == 2
    sft = report.verdict("SFT")
    assert sft is not None and sft.verdict == Verdict.NEEDS_MAPPING and sft.conversion == Conversion.ALPACA
    test = inspect(hub, "tester/alpaca", split="test", token=None)
    assert test.rows == 10


def test_csv(hub: Any) -> None:
    report = inspect(hub, "tester/csv", sample_rows=20)
    assert report.source.file_format == "csv" and report.rows == 60 and report.sampled_rows == 20
    assert report.format == "alpaca"


def test_wrong_split_names_the_splits(hub: Any) -> None:
    err = spec_error(hub, "tester/alpaca", split="validation")
    assert err.reason == "DatasetNotFound" and "`test`, `train`" in err.message


def test_revision(hub: Any) -> None:
    report = inspect(hub, "tester/alpaca", revision="text-only")
    assert report.format == "text" and report.rows == 40 and report.ready("SFT")
    err = spec_error(hub, "tester/alpaca", revision="no-such-branch")
    assert err.reason == "DatasetNotFound" and "no revision `no-such-branch`" in err.message


def test_private_dataset_needs_the_token(hub: Any) -> None:
    err = spec_error(hub, "tester/private-mix", token=None)
    assert err.reason == "DatasetNotFound" and "private" in err.message and "no token" in err.message
    report = inspect(hub, "tester/private-mix", split="test")
    assert report.config == "main" and report.rows == 60 and report.source.configs == ["main", "tools"]
    grpo = report.verdict("GRPO")
    assert (
        grpo is not None
        and grpo.verdict == Verdict.NEEDS_MAPPING
        and grpo.conversion == Conversion.QUESTION_ANSWER
    )
    assert DEFAULT_TOKEN not in report.to_json()


def test_config_and_wrong_config(hub: Any) -> None:
    tools = inspect(hub, "tester/private-mix", config="tools")
    assert tools.format == "sharegpt" and tools.rows == 40
    err = spec_error(hub, "tester/private-mix", config="nope")
    assert "no config `nope`" in err.message and "`main`, `tools`" in err.message
    err = spec_error(hub, "tester/private-mix", config="main", split="train")
    assert "no split `train`" in err.message and "`test`" in err.message


def test_missing_dataset(hub: Any) -> None:
    err = spec_error(hub, "tester/does-not-exist")
    assert err.reason == "DatasetNotFound" and "does not exist" in err.message


def test_no_data_files_and_no_parquet_conversion(hub: Any) -> None:
    err = spec_error(hub, "tester/script-only")
    assert (
        err.reason == "DatasetInvalid"
        and "no data files" in err.message
        and "`script_only.py`" in err.message
    )


def test_gated_dataset(hub: Any) -> None:
    err = spec_error(hub, "tester/preference", token="hf_other_reader")
    assert err.reason == "DatasetNotFound" and "gated" in err.message
    report = inspect(hub, "tester/preference")  # the owner has access
    assert report.format == "sharegpt-preference"


def test_large_files_are_read_in_ranges_and_counted_by_estimate(
    hub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import finetune_operator.validation.hub as hub_module

    monkeypatch.setattr(hub_module, "FULL_READ_BYTES", 0)  # every file counts as too large to read whole
    report = inspect(hub, "tester/private-mix", split="test", sample_rows=20)
    assert report.sampled_rows == 20 and report.rows_estimated
    assert report.rows is not None and 40 < report.rows < 80  # 60 rows
    tools = inspect(hub, "tester/private-mix", config="tools", sample_rows=10)
    assert tools.sampled_rows == 10 and tools.rows_estimated


def test_server_errors_are_transient(hub: Any) -> None:
    # The client itself retries 500/502/503/504 with backoff (about 20 s) before giving up; 520 (a
    # Cloudflare-style origin error) reaches us at once, through the same path.
    rule = hub.faults.server_error(r"/resolve/", status=520, times=5)
    try:
        with pytest.raises(RetryLater):
            inspect(hub, "tester/alpaca", token=None)
    finally:
        hub.faults.clear()
    assert rule.hits >= 1


def test_cli_reads_the_token_from_the_environment(
    hub: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert os.environ.get("HF_TOKEN") == DEFAULT_TOKEN  # client_config exported it
    code = main(
        ["validate", "tester/private-mix", "--split", "test", "-m", "GRPO", "--conversion", "QuestionAnswer"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "GRPO  READY" in out and "Hub, jsonl, split test, config main" in out
