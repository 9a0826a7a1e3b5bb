"""The Grafana dashboard shipped with the chart queries only metrics the operator exposes, in valid PromQL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from finetune_operator.api.status import Progress
from finetune_operator.metrics import JobLabels, OperatorMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "charts/finetune-operator/dashboards/finetune-operator.json"
METRIC = re.compile(r"\bfinetune_operator_[a-z0-9_]+")


def exposed_names() -> set[str]:
    """Every sample name the operator's registry renders, with every series populated."""
    metrics = OperatorMetrics()
    metrics.job_phase_changed("a/x", None, "Pending")
    metrics.job_phase_changed("a/x", "Pending", "Running")
    metrics.job_failed("Boom")
    metrics.backend_api_error("HFJobs", "HTTP5xx")
    with metrics.time_reconcile(), metrics.time_validation(), metrics.time_planning():
        pass
    progress = Progress(step=1, total_steps=2, loss=1.0, tokens_per_second=1.0, eta_seconds=1)
    metrics.update_job(JobLabels(namespace="a", name="x", method="SFT", backend="Local"), progress, 1.0, 1.0)
    return {s.name for f in text_string_to_metric_families(metrics.render()) for s in f.samples}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def expressions() -> list[str]:
    exprs = [t["expr"] for p in panels() for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_every_panel_queries_exposed_metrics() -> None:
    names = exposed_names()
    assert panels(), "the dashboard has no panels"
    for panel in panels():
        used = {m for t in panel["targets"] for m in METRIC.findall(t["expr"])}
        assert used, f"panel {panel['title']!r} queries no operator metric"
        assert used <= names, f"panel {panel['title']!r} queries unknown metrics {used - names}"
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            assert set(METRIC.findall(variable["definition"])) <= names


def test_main_panels_present_and_templated() -> None:
    titles = {p["title"] for p in panels()}
    for wanted in (
        "Jobs by phase",
        "Reconcile latency p95",
        "Training loss",
        "Progress",
        "Throughput",
        "ETA",
    ):
        assert wanted in titles
    assert any("Failures" in t for t in titles) and any("cost" in t for t in titles)
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert {"namespace", "job"} <= set(variables)
    for panel in panels():
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in panel["targets"])
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing: apt-get install prometheus")
def test_expressions_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query as a recording rule, Grafana's variables replaced by plain values."""
    substitutions = {"$__rate_interval": "5m", "$namespace": ".*", "$job": ".*"}
    rules = []
    for i, expr in enumerate(e for e in expressions() if not e.startswith("label_values(")):
        for var, val in substitutions.items():
            expr = expr.replace(var, val)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
