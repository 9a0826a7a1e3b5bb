"""Operator metrics: conventions checked by the real `promtool`, bounded per-job series that go away."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from functools import partial

import pytest
from prometheus_client.parser import text_string_to_metric_families

from finetune_operator.api.status import Progress
from finetune_operator.backends.base import JobTarget, WorkRef, WorkState, WorkStatus
from finetune_operator.backends.metered import MeteredBackend
from finetune_operator.errors import RetryLater, SpecError
from finetune_operator.handlers.indexes import ftj_phases, phase_counts
from finetune_operator.metrics import JobLabels, OperatorMetrics, start_metrics_server

LABELS = JobLabels(namespace="team-a", name="support-bot", method="SFT", backend="Kubernetes")
PROGRESS = Progress(step=42, total_steps=100, loss=1.25, tokens_per_second=512.5, eta_seconds=300)


def samples(metrics: OperatorMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample, keyed by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics.render())
        for s in family.samples
    }


def value(metrics: OperatorMetrics, metric: str, /, **labels: str) -> float | None:
    return samples(metrics).get((metric, frozenset(labels.items())))


def busy_metrics() -> OperatorMetrics:
    metrics = OperatorMetrics()
    metrics.job_phase_changed("team-a/support-bot", None, "Pending")
    metrics.job_phase_changed("team-a/support-bot", "Pending", "Running")
    metrics.job_failed("OutOfMemory")
    metrics.backend_api_error("HFJobs", "HTTP5xx")
    with metrics.time_reconcile(), metrics.time_validation(), metrics.time_planning():
        pass
    metrics.update_job(LABELS, PROGRESS, estimated_cost_usd=3.5, elapsed_cost_usd=1.2)
    return metrics


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing: apt-get install prometheus")
def test_promtool_check_metrics_passes() -> None:
    text = busy_metrics().render()
    assert "finetune_operator_job_training_loss{" in text
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_promtool_would_catch_a_bad_name() -> None:
    """The check above can fail: promtool flags names against the conventions (here a non-base unit)."""
    if shutil.which("promtool") is None:
        pytest.skip("promtool missing")
    name = "ftjob_duration_milliseconds"
    bad = f"# HELP {name} x\n# TYPE {name} gauge\n{name} 1\n"
    result = subprocess.run(["promtool", "check", "metrics"], input=bad, capture_output=True, text=True)
    assert result.returncode != 0


def test_per_job_series_values() -> None:
    metrics = busy_metrics()
    job = {"namespace": "team-a", "name": "support-bot", "method": "SFT", "backend": "Kubernetes"}
    assert value(metrics, "finetune_operator_job_training_loss", **job) == 1.25
    assert value(metrics, "finetune_operator_job_step", **job) == 42
    assert value(metrics, "finetune_operator_job_total_steps", **job) == 100
    assert value(metrics, "finetune_operator_job_progress_ratio", **job) == 0.42
    assert value(metrics, "finetune_operator_job_tokens_per_second", **job) == 512.5
    assert value(metrics, "finetune_operator_job_estimated_cost_usd", **job) == 3.5
    assert value(metrics, "finetune_operator_job_elapsed_cost_usd", **job) == 1.2
    assert value(metrics, "finetune_operator_job_eta_seconds", **job) == 300


def test_unknown_values_remove_their_series_and_labels_change_replaces() -> None:
    metrics = busy_metrics()
    job = {"namespace": "team-a", "name": "support-bot", "method": "SFT", "backend": "Kubernetes"}
    metrics.update_job(LABELS, Progress(step=43, total_steps=100), None, 1.3)
    assert value(metrics, "finetune_operator_job_training_loss", **job) is None
    assert value(metrics, "finetune_operator_job_estimated_cost_usd", **job) is None
    assert value(metrics, "finetune_operator_job_step", **job) == 43
    moved = LABELS.model_copy(update={"backend": "HFJobs"})
    metrics.update_job(moved, Progress(step=1), None, None)
    assert value(metrics, "finetune_operator_job_step", **job) is None
    assert value(metrics, "finetune_operator_job_step", **{**job, "backend": "HFJobs"}) == 1


def test_remove_job_removes_every_series_and_its_phase() -> None:
    metrics = busy_metrics()
    other = JobLabels(namespace="team-b", name="x", method="DPO", backend="HFJobs")
    metrics.update_job(other, PROGRESS, 1.0, 0.5)
    metrics.remove_job("team-a", "support-bot")
    names = {name for (name, labels) in samples(metrics) if ("name", "support-bot") in labels}
    assert names == set()
    assert value(metrics, "finetune_operator_job_step", **other.model_dump()) == 42
    assert value(metrics, "finetune_operator_jobs", phase="Running") == 0


def test_grpo_reward_per_function_is_set_and_removed_with_the_job() -> None:
    metrics = OperatorMetrics()
    grpo = JobLabels(namespace="team-a", name="math", method="GRPO", backend="HFJobs")
    job = grpo.model_dump()
    progress = Progress(step=5, reward=1.4, rewards={"accuracy": 0.6, "format": 0.8})
    metrics.update_job(grpo, progress, None, None)
    assert value(metrics, "finetune_operator_job_reward", **job) == 1.4
    assert value(metrics, "finetune_operator_job_function_reward", **job, reward="accuracy") == 0.6
    assert value(metrics, "finetune_operator_job_function_reward", **job, reward="format") == 0.8
    # A function no longer logged loses its series; a change of backend moves the others.
    metrics.update_job(grpo, Progress(step=6, reward=0.9, rewards={"accuracy": 0.9}), None, None)
    assert value(metrics, "finetune_operator_job_function_reward", **job, reward="accuracy") == 0.9
    assert value(metrics, "finetune_operator_job_function_reward", **job, reward="format") is None
    moved = grpo.model_copy(update={"backend": "Kubernetes"})
    metrics.update_job(moved, progress, None, None)
    assert value(metrics, "finetune_operator_job_function_reward", **job, reward="accuracy") is None
    assert (
        value(metrics, "finetune_operator_job_function_reward", **moved.model_dump(), reward="format") == 0.8
    )
    metrics.remove_job("team-a", "math")
    assert not [name for (name, labels) in samples(metrics) if ("name", "math") in labels]


def test_jobs_by_phase_and_transitions() -> None:
    clock = [0.0]
    metrics = OperatorMetrics(clock=lambda: clock[0])
    metrics.job_phase_changed("a/x", None, "Pending")
    metrics.job_phase_changed("a/y", None, "Running")
    clock[0] = 30.0
    metrics.job_phase_changed("a/x", "Pending", "Running")
    assert value(metrics, "finetune_operator_jobs", phase="Running") == 2
    assert value(metrics, "finetune_operator_jobs", phase="Pending") == 0
    assert value(metrics, "finetune_operator_jobs", phase="Failed") == 0  # every phase is present
    key = "finetune_operator_phase_transitions_total"
    assert value(metrics, key, from_phase="Pending", to_phase="Running") == 1
    assert value(metrics, "finetune_operator_phase_duration_seconds_sum", phase="Pending") == 30.0
    # A re-announced phase after a restart (old None) is neither a transition nor a double count.
    metrics.job_phase_changed("a/x", None, "Running")
    assert value(metrics, "finetune_operator_jobs", phase="Running") == 2
    metrics.job_phase_changed("a/y", "Running", None)
    assert value(metrics, "finetune_operator_jobs", phase="Running") == 1


def test_jobs_by_phase_are_counted_at_scrape_time_from_the_operators_index() -> None:
    """After a restart no terminal job reports a transition again: the gauge counts what the index holds
    (kopf's listing of every FineTuneJob), at each scrape."""
    index: dict[str, list[None]] = {"Succeeded": [None] * 4, "Running": [None]}
    metrics = OperatorMetrics()
    metrics.count_phases_from(partial(phase_counts, index))
    assert value(metrics, "finetune_operator_jobs", phase="Succeeded") == 4
    assert value(metrics, "finetune_operator_jobs", phase="Running") == 1
    assert value(metrics, "finetune_operator_jobs", phase="Failed") == 0  # every phase is present
    # The index moves with the watch events; nothing else needs to be called.
    index["Succeeded"].append(None)
    del index["Running"]
    metrics.job_phase_changed("a/x", None, "Running")  # announcements do not count twice
    assert value(metrics, "finetune_operator_jobs", phase="Succeeded") == 5
    assert value(metrics, "finetune_operator_jobs", phase="Running") == 0


def test_the_phase_index_files_each_job_under_its_phase() -> None:
    assert asyncio.run(ftj_phases(status={"phase": "Succeeded"})) == {"Succeeded": None}
    assert asyncio.run(ftj_phases(status={})) == {"Pending": None}  # no status yet


class Flaky:
    """A backend whose calls fail as told."""

    kind = "Fake"
    needs_token = False
    retries_itself = True
    collected_with_job = True

    def __init__(self) -> None:
        self.error: Exception | None = None

    def _maybe_fail(self) -> None:
        if self.error is not None:
            raise self.error

    def find(self, target: JobTarget) -> WorkRef | None:
        self._maybe_fail()
        return None

    def submit(self, target: JobTarget, plan: object, timeout_seconds: int) -> WorkRef:
        self._maybe_fail()
        return WorkRef(kind="Fake", id="w")

    def poll(self, target: JobTarget, ref: WorkRef) -> WorkStatus:
        self._maybe_fail()
        return WorkStatus(state=WorkState.RUNNING)

    def logs(
        self,
        target: JobTarget,
        ref: WorkRef,
        *,
        follow: bool = False,
        tail: int | None = None,
        cursor: object = None,
    ) -> Iterator[str]:
        yield "a line"
        self._maybe_fail()

    def cancel(self, target: JobTarget, ref: WorkRef) -> None:
        self._maybe_fail()

    def link(self, ref: WorkRef) -> str | None:
        return None


def test_backend_api_errors_are_counted_by_backend_and_kind() -> None:
    metrics = OperatorMetrics()
    inner = Flaky()
    backend = MeteredBackend(inner, "HFJobs", metrics)  # type: ignore[arg-type]
    target = JobTarget(namespace="a", name="x", uid="u")
    ref = WorkRef(kind="Fake", id="w")
    assert backend.poll(target, ref).state == WorkState.RUNNING and list(backend.logs(target, ref)) == [
        "a line"
    ]
    assert backend.needs_token is False and backend.retries_itself is True
    inner.error = RetryLater("HTTP 503")
    for call in (lambda: backend.poll(target, ref), lambda: list(backend.logs(target, ref))):
        with pytest.raises(RetryLater):
            call()
    inner.error = SpecError("Forbidden", "no")
    with pytest.raises(SpecError):
        backend.cancel(target, ref)
    inner.error = ValueError("bug")
    with pytest.raises(ValueError):
        backend.find(target)
    key = "finetune_operator_backend_api_errors_total"
    assert value(metrics, key, backend="HFJobs", kind="Transient") == 2
    assert value(metrics, key, backend="HFJobs", kind="Forbidden") == 1
    assert value(metrics, key, backend="HFJobs", kind="ValueError") == 1


def test_counters_and_histograms() -> None:
    metrics = busy_metrics()
    assert value(metrics, "finetune_operator_job_failures_total", reason="OutOfMemory") == 1
    assert value(metrics, "finetune_operator_backend_api_errors_total", backend="HFJobs", kind="HTTP5xx") == 1
    for name in ("reconcile", "validation", "planning"):
        assert value(metrics, f"finetune_operator_{name}_duration_seconds_count") == 1


def test_metrics_server_serves_the_registry() -> None:
    metrics = busy_metrics()
    server, thread = start_metrics_server(0, metrics.registry, host="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
        assert 'finetune_operator_job_step{backend="Kubernetes",method="SFT"' in body
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
