"""The operator validates datasets in a child process: it never loads pyarrow, and the child's answer is the
report (or the domain error) that validating in the process would give."""

from __future__ import annotations

import subprocess
import sys

import pytest

from finetune_operator.errors import SpecError
from finetune_operator.validation import inspect_dataset
from finetune_operator.validation.isolated import ValidationRequest, inspect_in_child
from finetune_training.plan import DatasetSource
from tests.example_data import DATASETS


def test_the_operator_process_never_loads_pyarrow() -> None:
    # The operator's modules and its dependencies as built at start-up, in a fresh interpreter, validating a
    # dataset as the validate phase does.
    code = f"""
import sys
from finetune_operator.config import OperatorConfig
from finetune_operator.handlers.startup import build_deps
from finetune_operator.metrics import OperatorMetrics
from finetune_training.plan import DatasetSource
from kubernetes import client
deps = build_deps(OperatorConfig(enabled_backends=[], metrics_port=0), client.ApiClient(), OperatorMetrics())
report = deps.validate(DatasetSource(name={str(DATASETS / "alpaca.json")!r}, conversion="Alpaca"), methods=["SFT"])
assert report.rows, report
loaded = [m for m in ("pyarrow", "numpy", "pandas") if m in sys.modules]
assert not loaded, loaded
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_child_answers_what_validating_in_process_answers() -> None:
    source = DatasetSource(name=str(DATASETS / "alpaca.json"), conversion="Alpaca")
    options = {"methods": ["SFT", "DPO"], "max_length": 512}
    child = inspect_in_child(source, **options).model_dump(exclude={"elapsed_seconds"})  # type: ignore[arg-type]
    here = inspect_dataset(source, **options).model_dump(exclude={"elapsed_seconds"})  # type: ignore[arg-type]
    assert child == here and child["rows"] > 0


def test_a_domain_error_in_the_child_is_raised_as_itself() -> None:
    with pytest.raises(SpecError) as raised:
        inspect_in_child(DatasetSource(name="/nowhere/data.jsonl"), methods=["SFT"])
    assert raised.value.reason == "DatasetNotFound" and "/nowhere/data.jsonl" in raised.value.message


def test_the_token_is_written_out_only_for_the_child() -> None:
    request = ValidationRequest(
        source=DatasetSource(name="o/d"), token="hf_secret_value", methods=["SFT"], options={}
    )  # type: ignore[arg-type]
    assert "hf_secret_value" not in request.model_dump_json() + repr(request) + str(request)
    assert "hf_secret_value" in request.model_dump_json(context={"reveal": True})
