"""`ftjob validate`: readable and JSON reports, exit codes, errors on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from finetune_operator.cli.main import main
from tests.example_data import DATASETS

ALPACA = str(DATASETS / "alpaca.json")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_text_report_with_mapping_snippet(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, ALPACA)
    assert code == 1  # nothing is Ready as configured: SFT needs the Alpaca conversion
    assert "SFT   NEEDS MAPPING" in out and "DPO   INCOMPATIBLE" in out
    snippet = out.split("(paste into spec):\n", 1)[1].split("\n\n", 1)[0]
    assert yaml.safe_load(snippet) == {"dataset": {"name": ALPACA, "conversion": "Alpaca"}}
    assert "Rows      60; 60 sampled" in out and "estimated as characters / 4" in out


def test_mapping_given_makes_it_ready(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, ALPACA, "--method", "sft", "--conversion", "Alpaca")
    assert code == 0
    assert "SFT   READY" in out and "DPO" not in out


def test_exit_codes_per_requested_method(capsys: pytest.CaptureFixture[str]) -> None:
    c4 = str(DATASETS / "text.jsonl")
    assert run(capsys, c4)[0] == 0  # SFT is ready
    assert run(capsys, c4, "-m", "DPO")[0] == 1
    assert run(capsys, c4, "-m", "SFT", "-m", "DPO")[0] == 1


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, str(DATASETS / "question_answer.jsonl"), "-m", "GRPO", "-o", "json", "--max-length", "64"
    )
    data = json.loads(out)
    assert code == 1
    assert data["verdicts"] == [
        {
            "method": "GRPO",
            "verdict": "NeedsMapping",
            "reason": data["verdicts"][0]["reason"],
            "conversion": "QuestionAnswer",
            "columns": None,
        }
    ]
    assert data["rows"] == 60 and data["lengths"]["maxLength"] == 64


def test_columns_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"q": f"q{i}", "r": f"r{i}"}) + "\n" for i in range(5)))
    code, out, _ = run(
        capsys, str(path), "-m", "SFT", "--column", "prompt=q", "--column", "completion=r", "-o", "json"
    )
    assert code == 0
    assert json.loads(out)["verdicts"][0]["columns"] == {
        "messages": None, "prompt": "q", "completion": "r", "text": None,
        "chosen": None, "rejected": None, "answer": None, "tools": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["/no/such/file.jsonl"], "DatasetNotFound"),
        ([str(DATASETS / "text.jsonl"), "--split", "test"], "only the split `train`"),
        ([ALPACA, "--column", "completion"], "must be TARGET=SOURCE"),
        ([ALPACA, "--column", "output=completion"], "target `output` must be one of"),
        ([ALPACA, "--column", "completion=nope", "-m", "SFT"], None),
    ],
)
def test_errors_go_to_stderr_with_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str | None
) -> None:
    code, out, err = run(capsys, *args)
    if needle is None:  # a rename of a missing column is a verdict, not an error
        assert code == 1 and "NEEDS MAPPING" in out and "`nope` named in `columns`" in out
        return
    assert code == 2 and needle in err and "Traceback" not in err and out == ""


def test_hub_name_offline_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "someone/some-dataset")
    assert code == 2 and "someone/some-dataset" in err and "HF_HUB_OFFLINE" in err


def test_a_dataset_with_only_a_test_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    turns = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}] for i in range(5)]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps({"messages": t}) + "\n" for t in turns))
    code, _, err = run(capsys, str(tmp_path))
    assert code == 2 and "has no split `train`; it has `test`" in err and "--split" in err
    code, out, _ = run(capsys, str(tmp_path), "--split", "test", "-o", "json")
    assert code == 0
    warning = next(w for w in json.loads(out)["warnings"] if "split `test`" in w)
    assert "held out for evaluation" in warning and "no other split" in warning
    (tmp_path / "train.jsonl").write_text((tmp_path / "test.jsonl").read_text())
    code, out, _ = run(capsys, str(tmp_path), "--split", "test", "-o", "json")
    assert any("train on `train` instead" in w for w in json.loads(out)["warnings"])
