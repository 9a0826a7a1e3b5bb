"""What a user (or an agent relaying it) reads about a finished DPO run: the metric that says whether it
learned, how rows became steps, how long it trained, what it cost — in status, `kubectl get` and the
one-line summary."""

from __future__ import annotations

import math
import re
import subprocess
from typing import Any

import pytest

from tests.conftest import ROOT, kubectl
from tests.e2e.conftest import TINY_REPO
from tests.e2e.support import apply, ftj, phase_is, wait_for
from tests.example_data import DATASETS

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]


def test_a_dpo_run_reports_reward_accuracy_rows_elapsed_time_and_cost(
    namespace: str, run_operator: Any, token_secret: str
) -> None:
    manifest = ftj(
        "prefs",
        model=TINY_REPO,
        dataset={"name": str(DATASETS / "sharegpt_preference.json"), "conversion": "ShareGPTPreference"},
        method="DPO",
        backend="Local",
        peft="LoRA",
        hyperparameters={
            "maxSteps": 3,
            "maxLength": 128,
            "perDeviceBatchSize": 2,
            "gradientAccumulationSteps": 1,
            "loggingSteps": 1,
        },
        tokenSecretRef={"name": token_secret},
    )
    with run_operator():
        apply(namespace, manifest)
        obj = wait_for(namespace, "prefs", phase_is("Succeeded", "Failed"), timeout=300)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    p = obj["status"]["progress"]
    # DPO's loss starts at ln 2 whatever the data; its reward accuracy says whether it learned.
    assert p["firstLoss"] == pytest.approx(math.log(2), abs=0.01)
    assert 0 <= p["rewardAccuracy"] <= 1 and "rewardMargin" in p
    assert p["elapsedSeconds"] > 0
    rows = p["rows"]
    # Rows add up: DPO leaves out a row whose prompt alone fills maxLength (one prompt here is that long).
    assert not rows["packed"] and rows["examplesPerStep"] == 2
    assert rows["droppedRows"] == 1 and rows["examples"] == rows["datasetRows"] - 1
    assert rows["droppedReason"] == "the prompt alone fills maxLength 128"
    cost = obj["status"]["cost"]
    assert cost["runningSeconds"] > 0 and cost["actualUSD"] == 0  # Local is free unless priced

    # kubectl's Cost column is the spend; the estimate shows with -o wide.
    table = kubectl("get", "ftj", "prefs", "-n", namespace).stdout.splitlines()
    assert "COST" in table[0] and "ESTIMATE" not in table[0]
    wide = kubectl("get", "ftj", "prefs", "-n", namespace, "-o", "wide").stdout.splitlines()[0]
    assert "ESTIMATE" in wide

    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ftjob"), "status", "prefs", "-n", namespace, "-o", "summary"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert re.match(r"Job prefs succeeded \([\w ]+ elapsed\) · step 3/3 · training loss [\d.]+", line), line
    assert "reward accuracy" in line and "cost $0.00" in line, line
