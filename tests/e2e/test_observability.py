"""A user sees a job move without reading logs: Prometheus scraping the operator, and `ftjob` views."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import TINY_REPO
from tests.e2e.support import apply, ftj, phase_is, wait_for
from tests.prom import start_prometheus

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus package is not installed")
def test_prometheus_scrapes_per_job_series_during_a_run_and_the_cli_shows_the_job(
    namespace: str,
    run_operator: Any,
    alpaca_dataset: dict[str, Any],
    token_secret: str,
    tmp_path: Path,
) -> None:
    manifest = ftj(
        "observed",
        model=TINY_REPO,
        dataset=alpaca_dataset,
        backend="Local",
        peft="LoRA",
        hyperparameters={"maxSteps": 8, "maxLength": 128, "perDeviceBatchSize": 2, "loggingSteps": 1},
        tokenSecretRef={"name": token_secret},
    )
    with run_operator() as op:
        prometheus = start_prometheus([f"127.0.0.1:{op.metrics_port}"], tmp_path, scrape_interval="1s")
        try:
            apply(namespace, manifest)
            wait_for(namespace, "observed", phase_is("Succeeded", "Failed"), timeout=300)
            series = prometheus.wait_for(
                f'finetune_operator_job_step{{namespace="{namespace}",name="observed"}} > 0', timeout=60
            )
            assert series[0]["metric"]["method"] == "SFT" and series[0]["metric"]["backend"] == "Local"
            loss = prometheus.wait_for(f'finetune_operator_job_training_loss{{namespace="{namespace}"}}')
            assert float(loss[0]["value"][1]) > 0
            assert prometheus.wait_for('finetune_operator_jobs{phase="Succeeded"} >= 1')
        finally:
            prometheus.stop()
    # The CLI as a user runs it, against the cluster from the kubeconfig.
    shown = _ftjob("status", "observed", "-n", namespace)
    assert "Succeeded" in shown and "DatasetValidated" in shown
    assert '"ftjob":"done"' in _ftjob("logs", "observed", "-n", namespace)
    assert "Succeeded" in _ftjob("watch", "observed", "-n", namespace, "--timeout", "30")


def _ftjob(*args: str) -> str:
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ftjob"), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
