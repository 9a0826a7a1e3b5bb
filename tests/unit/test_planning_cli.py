"""`ftjob plan -f job.yaml`: text and JSON output, and clear errors, with no cluster and no Hub."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from finetune_operator.cli.main import main
from tests.example_data import DATASETS

DPO_DEMO = DATASETS / "sharegpt_preference.json"

JOB = """\
apiVersion: finetune.dev/v1alpha1
kind: FineTuneJob
metadata: {name: support-bot}
spec:
  model: {name: Qwen/Qwen2.5-7B}
  dataset: {name: my-org/conversations}
  method: SFT
  peft: LoRA
  backend: HFJobs
"""


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_text_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = write(tmp_path, JOB)
    code = main(
        ["plan", "-f", job, "--offline-model-params", "7e9", "--rows", "20000", "--mean-tokens", "500"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Plan for FineTuneJob support-bot (SFT)" in out
    assert "PEFT       LoRA" in out and "HFJobs/" in out and "10,000,000 training tokens" in out


def test_json_plan_is_camel_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = write(tmp_path, JOB)
    code = main(
        [
            "plan",
            "-f",
            job,
            "-o",
            "json",
            "--offline-model-params",
            "7e9",
            "--rows",
            "100",
            "--mean-tokens",
            "50",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["peft"] == "LoRA" and data["backend"] == "HFJobs"
    assert {"estimatedCostUSD", "suggestedTimeout", "timeoutSeconds", "hyperparameters", "summary"} <= set(
        data
    )
    assert data["hyperparameters"]["learningRate"] == 2e-4
    assert data["summary"]["tokens"] == 5000


def test_plan_reads_the_dataset_and_a_bare_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "dpo.json"
    shutil.copy(DPO_DEMO, data)
    job = write(tmp_path, f"model: {{name: org/m}}\ndataset: {{name: {data}}}\nmethod: DPO\n", "bare.yaml")
    code = main(["plan", "-f", job, "--offline-model-params", "0.5e9", "--no-live-catalog"])
    out = capsys.readouterr().out
    assert code == 0
    rows = len(json.loads(DPO_DEMO.read_text()))
    assert f"{rows:,} rows" in out


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("spec: {model: [\n", "not valid YAML"),
        ("spec: {model: {name: m}, method: SFT}\n", "spec.dataset: Field required"),
        ("kind: Pod\nspec: {}\n", "is a Pod"),
        ("- a\n", "must hold a FineTuneJob"),
    ],
)
def test_bad_input_is_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, needle: str
) -> None:
    code = main(
        [
            "plan",
            "-f",
            write(tmp_path, text),
            "--offline-model-params",
            "1e9",
            "--rows",
            "1",
            "--mean-tokens",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-f", str(tmp_path / "none.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_nothing_fits_exits_1_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = write(
        tmp_path,
        JOB.replace("peft: LoRA", "peft: None").replace(
            "backend: HFJobs", "backend: HFJobs\n  hardware: {flavor: t4-small}"
        ),
    )
    code = main(["plan", "-f", job, "--offline-model-params", "7e9", "--rows", "1", "--mean-tokens", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "NoHardwareFits" in err and "peft: QLoRA" in err


def test_model_from_hub_offline_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "-f", write(tmp_path, JOB), "--rows", "1", "--mean-tokens", "1"])
    assert code == 2 and "offline-model-params" in capsys.readouterr().err
