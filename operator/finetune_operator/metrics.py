"""Prometheus metrics of the operator and of each FineTuneJob, served on `/metrics`.

Operator series count jobs, transitions, failures, durations and backend API errors. Per-job series are
labelled only by ``namespace``, ``name``, ``method`` and ``backend`` (bounded, never free text), plus
``reward`` for a GRPO job's per-function rewards (the spec's reward functions, at most 16), and are
removed with :meth:`OperatorMetrics.remove_job` when the job goes.
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, suppress
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from pydantic import BaseModel

from finetune_operator.api.status import Phase, Progress

NAMESPACE = "finetune_operator"
JOB_LABELS = ("namespace", "name", "method", "backend")

# Fast API work: dataset inspection and Hub look-ups take from milliseconds to a minute or two.
API_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# A phase lasts from seconds (Validating) to days (a long Running).
PHASE_BUCKETS = (
    1.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    43200.0,
    86400.0,
    259200.0,
)


class JobLabels(BaseModel):
    """The labels of one job's series."""

    namespace: str
    name: str
    method: str
    """SFT, DPO or GRPO."""
    backend: str
    """HFJobs, Kubernetes or Local."""

    @property
    def key(self) -> str:
        """`namespace/name`, the key used by :meth:`OperatorMetrics.job_phase_changed`."""
        return f"{self.namespace}/{self.name}"

    def values(self) -> tuple[str, str, str, str]:
        """Label values in `JOB_LABELS` order."""
        return (self.namespace, self.name, self.method, self.backend)


PhaseCounts = Callable[[], Mapping[str, int]]
"""Jobs per phase value, as the operator knows them now."""


class JobsByPhase(Collector):
    """`finetune_operator_jobs{phase}`, counted when scraped (every phase present, 0 when none).

    Counted at scrape time from what the operator knows, not set on transitions: a job that never changes
    phase again (a terminal one after a restart) still counts.
    """

    NAME = f"{NAMESPACE}_jobs"
    DOC = "FineTuneJobs known to the operator, by phase."

    def __init__(self, counts: PhaseCounts) -> None:
        self.counts = counts

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.NAME, self.DOC, labels=["phase"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.NAME, self.DOC, labels=["phase"])
        counts = dict(self.counts())
        for phase in Phase:
            family.add_metric([phase.value], counts.pop(phase.value, 0))
        for other, count in sorted(counts.items()):
            family.add_metric([other], count)
        yield family


class OperatorMetrics:
    """Every metric the operator exposes, on one registry.

    Parameters
    ----------
    registry
        Where to register; by default a new registry with the process, platform and GC collectors
        (the global default registry is left alone, so several instances can live in one process).
    clock
        Monotonic clock in seconds, for phase durations.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if registry is None:
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.registry = registry
        self._clock = clock
        self._lock = threading.Lock()
        self._phases: dict[str, tuple[str, float]] = {}
        self._phase_source: PhaseCounts | None = None
        self._jobs: dict[tuple[str, str], JobLabels] = {}
        # The `reward` labels each job's `job_function_reward` series carry, to remove them by name.
        self._rewards: dict[tuple[str, ...], set[str]] = {}

        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(name, doc, labels, namespace=NAMESPACE, registry=registry)

        def gauge(name: str, doc: str, labels: Iterable[str] = ()) -> Gauge:
            return Gauge(name, doc, labels, namespace=NAMESPACE, registry=registry)

        def histogram(
            name: str, doc: str, buckets: tuple[float, ...], labels: Iterable[str] = ()
        ) -> Histogram:
            return Histogram(name, doc, labels, namespace=NAMESPACE, registry=registry, buckets=buckets)

        registry.register(JobsByPhase(self.phase_counts))
        self.phase_transitions = counter(
            "phase_transitions",
            "FineTuneJob phase transitions, by phase left and phase entered.",
            ["from_phase", "to_phase"],
        )
        self.job_failures = counter("job_failures", "FineTuneJobs that failed, by reason.", ["reason"])
        self.queue_depth = gauge(
            "queue_depth",
            "FineTuneJobs with a next look planned in the operator's work queue (set at start-up).",
        )
        self.reconcile_duration = histogram(
            "reconcile_duration_seconds", "Time spent in one reconcile of a FineTuneJob.", API_BUCKETS
        )
        self.phase_duration = histogram(
            "phase_duration_seconds",
            "Time FineTuneJobs spent in a phase before leaving it.",
            PHASE_BUCKETS,
            ["phase"],
        )
        self.backend_api_errors = counter(
            "backend_api_errors",
            "Failed calls to a backend's API, by backend and error kind.",
            ["backend", "kind"],
        )
        self.validation_duration = histogram(
            "validation_duration_seconds", "Time spent validating a FineTuneJob's dataset.", API_BUCKETS
        )
        self.planning_duration = histogram(
            "planning_duration_seconds",
            "Time spent planning hardware and cost of a FineTuneJob.",
            API_BUCKETS,
        )
        self.job_training_loss = gauge("job_training_loss", "Latest training loss of a job.", JOB_LABELS)
        self.job_reward = gauge("job_reward", "Latest mean reward of a GRPO job's completions.", JOB_LABELS)
        self.job_function_reward = gauge(
            "job_function_reward",
            "Latest mean reward of a GRPO job's completions from one reward function.",
            (*JOB_LABELS, "reward"),
        )
        self.job_reward_accuracy = gauge(
            "job_reward_accuracy",
            "Latest share of a DPO job's pairs where the chosen answer is preferred (0 to 1).",
            JOB_LABELS,
        )
        self.job_reward_margin = gauge(
            "job_reward_margin", "Latest mean reward margin (chosen minus rejected) of a DPO job.", JOB_LABELS
        )
        self.job_eval_loss = gauge(
            "job_eval_loss", "Latest held-out evaluation loss of a job (with spec.evaluation).", JOB_LABELS
        )
        self.job_base_eval_loss = gauge(
            "job_base_eval_loss", "The base model's held-out evaluation loss, before training.", JOB_LABELS
        )
        self.job_step = gauge("job_step", "Latest training step of a job.", JOB_LABELS)
        self.job_total_steps = gauge("job_total_steps", "Training steps a job will take.", JOB_LABELS)
        self.job_progress_ratio = gauge(
            "job_progress_ratio", "Fraction of a job's training steps done (0 to 1).", JOB_LABELS
        )
        self.job_tokens_per_second = gauge(
            "job_tokens_per_second", "Latest training throughput of a job, in tokens per second.", JOB_LABELS
        )
        self.job_estimated_cost_usd = gauge(
            "job_estimated_cost_usd", "Planned cost of a job, in US dollars.", JOB_LABELS
        )
        self.job_elapsed_cost_usd = gauge(
            "job_elapsed_cost_usd", "Cost of a job so far, in US dollars.", JOB_LABELS
        )
        self.job_eta_seconds = gauge(
            "job_eta_seconds", "Estimated time until a job's training ends.", JOB_LABELS
        )
        self._job_gauges = (
            self.job_training_loss,
            self.job_reward,
            self.job_reward_accuracy,
            self.job_reward_margin,
            self.job_eval_loss,
            self.job_base_eval_loss,
            self.job_step,
            self.job_total_steps,
            self.job_progress_ratio,
            self.job_tokens_per_second,
            self.job_estimated_cost_usd,
            self.job_elapsed_cost_usd,
            self.job_eta_seconds,
        )

    # Operator series

    def count_phases_from(self, source: PhaseCounts | None) -> None:
        """Count `finetune_operator_jobs` from `source` at each scrape (the operator's index of every
        FineTuneJob it watches, filled from its initial listing and each watch event); None: from the
        phases reported to :meth:`job_phase_changed`."""
        self._phase_source = source

    def phase_counts(self) -> Mapping[str, int]:
        """Jobs per phase value now."""
        source = self._phase_source
        if source is not None:
            return source()
        with self._lock:
            return Tally(phase for phase, _ in self._phases.values())

    def job_phase_changed(self, key: str, old_phase: str | None, new_phase: str | None) -> None:
        """Record that a job entered a phase (or appeared, or went).

        Without a source (:meth:`count_phases_from`), the jobs gauge counts the phase of every job seen
        here (``old_phase=None`` announces a job). A real transition counts in
        ``phase_transitions_total``, and the time spent in the old phase (when its start was seen by this
        process) is observed in ``phase_duration_seconds``.

        Parameters
        ----------
        key
            ``namespace/name``.
        old_phase
            The phase left, or None when the job is new to this process.
        new_phase
            The phase entered, or None when the job was deleted.
        """
        now = self._clock()
        with self._lock:
            previous = self._phases.get(key)
            if old_phase is not None and new_phase is not None and str(old_phase) != str(new_phase):
                self.phase_transitions.labels(from_phase=str(old_phase), to_phase=str(new_phase)).inc()
                if previous is not None and previous[0] == str(old_phase):
                    self.phase_duration.labels(phase=str(old_phase)).observe(max(0.0, now - previous[1]))
            if new_phase is None:
                self._phases.pop(key, None)
            elif previous is None or previous[0] != str(new_phase):
                self._phases[key] = (str(new_phase), now)

    def job_failed(self, reason: str) -> None:
        """Count a failed job under its CamelCase reason."""
        self.job_failures.labels(reason=reason).inc()

    def backend_api_error(self, backend: str, kind: str) -> None:
        """Count a failed backend API call (``kind``: a bounded error class such as ``HTTP5xx``)."""
        self.backend_api_errors.labels(backend=backend, kind=kind).inc()

    def time_reconcile(self) -> AbstractContextManager[object]:
        """A context manager (or decorator) timing one reconcile."""
        return self.reconcile_duration.time()

    def time_validation(self) -> AbstractContextManager[object]:
        """A context manager (or decorator) timing one dataset validation."""
        return self.validation_duration.time()

    def time_planning(self) -> AbstractContextManager[object]:
        """A context manager (or decorator) timing one planning."""
        return self.planning_duration.time()

    # Per-job series

    def update_job(
        self,
        labels: JobLabels,
        progress: Progress | None,
        estimated_cost_usd: float | None,
        elapsed_cost_usd: float | None,
    ) -> None:
        """Set a job's series from its progress and costs; an unknown value removes that series.

        Parameters
        ----------
        labels
            The job's labels; a change of method or backend replaces the old series.
        progress
            `status.progress` (None before training).
        estimated_cost_usd, elapsed_cost_usd
            The plan's estimate and the cost so far.
        """
        with self._lock:
            known = self._jobs.get((labels.namespace, labels.name))
            if known is not None and known != labels:
                self._remove_series(known)
            self._jobs[(labels.namespace, labels.name)] = labels
        p = progress or Progress()
        ratio = None
        if progress is not None and p.total_steps:
            ratio = min(1.0, p.step / p.total_steps)
        values = {
            self.job_training_loss: p.loss,
            self.job_reward: p.reward,
            self.job_reward_accuracy: p.reward_accuracy,
            self.job_reward_margin: p.reward_margin,
            self.job_eval_loss: p.evaluation.loss if p.evaluation else None,
            self.job_base_eval_loss: p.evaluation.base_loss if p.evaluation else None,
            self.job_step: p.step if progress is not None else None,
            self.job_total_steps: p.total_steps,
            self.job_progress_ratio: ratio,
            self.job_tokens_per_second: p.tokens_per_second,
            self.job_estimated_cost_usd: estimated_cost_usd,
            self.job_elapsed_cost_usd: elapsed_cost_usd,
            self.job_eta_seconds: p.eta_seconds,
        }
        key = labels.values()
        for metric, value in values.items():
            if value is None:
                self._remove(metric, key)
            else:
                metric.labels(*key).set(float(value))
        rewards = p.rewards or {}
        with self._lock:
            stale = self._rewards.pop(key, set()) - rewards.keys()
            if rewards:
                self._rewards[key] = set(rewards)
        for reward in stale:
            self._remove(self.job_function_reward, (*key, reward))
        for reward, mean in rewards.items():
            self.job_function_reward.labels(*key, reward).set(mean)

    def remove_job(self, namespace: str, name: str) -> None:
        """Remove every per-job series of a job and forget its phase (the job was deleted)."""
        with self._lock:
            labels = self._jobs.pop((namespace, name), None)
            if labels is not None:
                self._remove_series(labels)
        if f"{namespace}/{name}" in self._phases:
            self.job_phase_changed(f"{namespace}/{name}", None, None)

    def _remove_series(self, labels: JobLabels) -> None:
        for metric in self._job_gauges:
            self._remove(metric, labels.values())
        for reward in self._rewards.pop(labels.values(), set()):
            self._remove(self.job_function_reward, (*labels.values(), reward))

    @staticmethod
    def _remove(metric: Gauge, key: tuple[str, ...]) -> None:
        with suppress(KeyError):  # never set
            metric.remove(*key)

    def render(self) -> str:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry).decode()


def start_metrics_server(
    port: int, registry: CollectorRegistry, host: str = "0.0.0.0"
) -> tuple[WSGIServer, threading.Thread]:
    """Serve `/metrics` from a daemon thread.

    Parameters
    ----------
    port
        TCP port; 0 picks a free one (read it from ``server.server_port``).
    registry
        What to serve (``OperatorMetrics.registry``).
    host
        Address to bind; ``0.0.0.0`` so the cluster's Prometheus can scrape the pod.

    Returns
    -------
    tuple[WSGIServer, threading.Thread]
        The server (``shutdown()`` and ``server_close()`` stop it) and its thread.
    """
    return start_http_server(port, addr=host, registry=registry)
