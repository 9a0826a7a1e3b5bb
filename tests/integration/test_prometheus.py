"""A real Prometheus scrapes the operator's `/metrics` and answers PromQL for a per-job series."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from finetune_operator.api.status import Progress
from finetune_operator.metrics import JobLabels, OperatorMetrics, start_metrics_server
from tests.prom import start_prometheus

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="prometheus missing: apt-get install prometheus"
)


@pytest.fixture
def metrics_endpoint() -> Iterator[tuple[OperatorMetrics, str]]:
    metrics = OperatorMetrics()
    server, thread = start_metrics_server(0, metrics.registry, host="127.0.0.1")
    yield metrics, f"127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_prometheus_scrapes_a_per_job_series(
    metrics_endpoint: tuple[OperatorMetrics, str], tmp_path: Path
) -> None:
    metrics, target = metrics_endpoint
    labels = JobLabels(namespace="team-a", name="support-bot", method="SFT", backend="Kubernetes")
    metrics.update_job(labels, Progress(step=42, total_steps=100, loss=1.25), 3.5, 1.0)
    metrics.job_phase_changed("team-a/support-bot", None, "Running")
    with start_prometheus([target], tmp_path) as prom:
        result = prom.wait_for('finetune_operator_job_training_loss{namespace="team-a",name="support-bot"}')
        [series] = result
        assert series["metric"]["method"] == "SFT"
        assert series["metric"]["backend"] == "Kubernetes"
        assert float(series["value"][1]) == 1.25
        [ratio] = prom.wait_for('finetune_operator_job_progress_ratio{name="support-bot"}')
        assert float(ratio["value"][1]) == 0.42
        [running] = prom.wait_for('finetune_operator_jobs{phase="Running"}')
        assert float(running["value"][1]) == 1
        # A new value reaches Prometheus on the next scrape.
        metrics.update_job(labels, Progress(step=43, total_steps=100, loss=0.5), 3.5, 1.1)
        prom.wait_for('finetune_operator_job_training_loss{name="support-bot"} == 0.5')
        assert prom.query('up{job="finetune-operator"} == 1')
