"""Operator start-up and clean-up: settings, and the dependencies every handler gets through memo."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from functools import partial
from typing import Any

import kopf
from kubernetes import client, config

from finetune_operator import FINALIZER
from finetune_operator.backends.base import Backend
from finetune_operator.backends.metered import MeteredBackend
from finetune_operator.backends.registry import build_backends
from finetune_operator.cluster.events import EventPoster
from finetune_operator.cluster.gateway import KubeGateway
from finetune_operator.cluster.watched import WatchedWork
from finetune_operator.config import OperatorConfig
from finetune_operator.handlers.indexes import gpu_capacity, phase_counts
from finetune_operator.handlers.jobs import WatchedJobs
from finetune_operator.lifecycle.reconcile import Deps
from finetune_operator.lifecycle.status_writer import StatusWriter
from finetune_operator.metrics import OperatorMetrics, start_metrics_server
from finetune_operator.planner_service import GpuCapacity, PlannerService
from finetune_operator.validation.cache import ValidationCache
from finetune_operator.validation.isolated import inspect_in_child


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf keeps no copy of the last handled spec: no handler reacts to a spec diff (`handlers.jobs.on_event`
    watches events and compares `status.observedGeneration`; deletion needs no diff), so kopf's
    `last-handled-configuration` annotation would be an API write per job and per edit that nothing reads."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return {}  # nothing is compared: no deep copy of every object at every event

    def fetch(self, *, body: kopf.Body) -> None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


def api_client(pool_size: int | None = None) -> client.ApiClient:
    """A Kubernetes client: in-cluster when running in a pod, else the kubeconfig.

    `KUBECONFIG` is read now, not when the kubernetes package was imported (its default path is frozen at
    import time, so a process that sets `KUBECONFIG` later would otherwise read `~/.kube/config`).
    """
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
    configuration = client.Configuration.get_default_copy()
    if pool_size:
        # One connection per handler thread, and a few for the metrics and status writers.
        configuration.connection_pool_maxsize = pool_size + 4
    return client.ApiClient(configuration)


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    """kopf's own connection, from the same credentials as the operator's client (:func:`api_client`).

    kopf's built-in client-library login would read the kubeconfig path frozen at import (see above).
    kopf calls this again when the server answers 401, so expiring exec-plugin tokens are renewed.
    """
    try:
        api = api_client()
    except config.ConfigException as exc:
        raise kopf.LoginError(f"no Kubernetes credentials: not in a pod, and {exc}") from None
    try:
        cfg = api.configuration
        header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
        scheme, _space, token = (header or "").rpartition(" ")
        return kopf.ConnectionInfo(
            server=cfg.host,
            ca_path=cfg.ssl_ca_cert,
            insecure=not cfg.verify_ssl,
            username=cfg.username or None,
            password=cfg.password or None,
            scheme=scheme or None,
            token=token or None,
            certificate_path=cfg.cert_file,
            private_key_path=cfg.key_file,
            trust_env=settings.networking.trust_env,
        )
    finally:
        api.close()


def build_deps(
    cfg: OperatorConfig,
    api: client.ApiClient,
    metrics: OperatorMetrics,
    capacity: GpuCapacity | None = None,
) -> Deps:
    """Everything the reconcile loop needs (`capacity`: the cluster's GPUs from kopf's indexes)."""
    kube = KubeGateway(api)
    backends: dict[str, Backend] = {
        name: MeteredBackend(backend, name, metrics) for name, backend in build_backends(cfg, api).items()
    }
    planner = PlannerService(cfg, kube, capacity)
    status_writer = StatusWriter(api)
    return Deps(
        config=cfg,
        kube=kube,
        backends=backends,
        metrics=metrics,
        validate=ValidationCache(inspect_in_child),  # in a child process: no pyarrow in the operator
        plan=planner.plan,
        status_writer=status_writer,
        hold_for_cleanup=status_writer.hold,
    )


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
    """Configure kopf and build the dependencies. kopf passes its indexes (`handlers.indexes`) by name:
    empty now, filled from the watches before any resource handler runs."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="finetune.dev")
    settings.persistence.diffbase_storage = NoDiffBase()
    # Events are what `reconcile` decides to say (posted by `cluster.events`). kopf would also post each
    # INFO line of a handler's logger as an Event ("Handler succeeded." after every handler of
    # every job, "Creation is processed: ..."): API writes that say nothing. Failures still show.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    cfg = OperatorConfig.load()
    # kopf's executor runs only the sync start-up, login and clean-up handlers: passes run on the work
    # queue's threads (`cfg.workers`), deletions on threads of their own.
    settings.execution.max_workers = 4
    # The namespaces are named (`--namespace` per watched namespace, or `--all-namespaces`) and the CRD is
    # installed with the chart, so kopf need not watch Namespaces and CRDs: the chart grants neither.
    settings.scanning.disabled = True
    # kopf retries a failed start-up: connect first, and bind the metrics port only once per process.
    try:
        memo.api = api_client(cfg.workers)
    except config.ConfigException as exc:
        # No credentials will appear by retrying: stop with a message that says what is missing.
        raise kopf.PermanentError(
            f"no Kubernetes credentials: not in a pod (no service-account token) and no kubeconfig ({exc}); "
            "run it in the cluster with the chart, or set KUBECONFIG"
        ) from None
    if not hasattr(memo, "metrics"):
        memo.metrics = OperatorMetrics()
    phases = kwargs.get("ftj_phases")
    if isinstance(phases, Mapping):
        memo.metrics.count_phases_from(partial(phase_counts, phases))
    if cfg.metrics_port and getattr(memo, "metrics_server", None) is None:
        memo.metrics_server = start_metrics_server(cfg.metrics_port, memo.metrics.registry)
        logger.info("Prometheus metrics on :%d/metrics", cfg.metrics_port)
    nodes, pods = kwargs.get("gpu_nodes"), kwargs.get("gpu_pods")
    capacity = None
    if isinstance(nodes, Mapping) and isinstance(pods, Mapping):
        capacity = partial(gpu_capacity, nodes, pods)
    memo.deps = build_deps(cfg, memo.api, memo.metrics, capacity)
    jobs, pods = kwargs.get("training_jobs"), kwargs.get("training_pods")
    if isinstance(jobs, Mapping) and isinstance(pods, Mapping):
        seen = WatchedWork(jobs, pods)
        for backend in memo.deps.backends.values():
            backend.watch_from(seen)  # a no-op for a backend whose work the cluster does not hold
    previous = getattr(memo, "jobs", None)
    if previous is not None:  # a start-up that kopf retries
        previous.queue.stop()
    memo.jobs = WatchedJobs(memo.deps, cfg.workers, post=EventPoster(memo.api).post)
    memo.jobs.queue.start()
    memo.metrics.queue_depth.set_function(memo.jobs.queue.__len__)
    logger.info("backends enabled: %s", ", ".join(memo.deps.backends) or "none")


@kopf.on.cleanup()
def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Close what start-up opened."""
    jobs = getattr(memo, "jobs", None)
    if jobs is not None:
        jobs.queue.stop()
    server = getattr(memo, "metrics_server", None)
    if server is not None:
        server[0].shutdown()
        server[0].server_close()  # free the port for a restarted operator in the same process
    api = getattr(memo, "api", None)
    if api is not None:
        api.close()
