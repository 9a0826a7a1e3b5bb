"""Gathers the planner's inputs (model size, HF Jobs catalog, cluster GPUs) for one FineTuneJob."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from finetune_operator.api.spec import Backend, FineTuneJobSpec
from finetune_operator.config import OperatorConfig
from finetune_operator.kube import KubeGateway
from finetune_operator.planning import (
    ClusterGpuOffer,
    HFJobsCatalog,
    PlannerConfig,
    load_catalog,
    offers_from_objects,
)
from finetune_operator.planning.cluster import offers_from_nodes
from finetune_operator.planning.model_info import load_model_info
from finetune_operator.planning.policy import PlanDecision, make_plan

CATALOG_TTL_SECONDS = 3600.0
GpuCapacity = Callable[[], tuple[list[dict[str, Any]], dict[str, int]]]
"""The nodes that offer GPUs (API JSON) and the GPUs unfinished pods hold per node name, now."""


def planner_config(cfg: OperatorConfig) -> PlannerConfig:
    """The planner's settings from the operator's configuration."""
    return PlannerConfig(
        prefer_cluster=cfg.prefer_cluster,
        hf_jobs_enabled=Backend.HF_JOBS in cfg.enabled_backends,
        local_gpus=cfg.local_gpus,
        local_usd_per_hour=cfg.local_usd_per_hour,
        local_gpu_product=cfg.local_gpu_product,
        cluster_gpu_prices=list(cfg.gpu_prices),
    )


class PlannerService:
    """Plans FineTuneJobs; caches the HF Jobs catalog for an hour."""

    def __init__(
        self, cfg: OperatorConfig, kube: KubeGateway | None, capacity: GpuCapacity | None = None
    ) -> None:
        self.cfg = cfg
        self.kube = kube
        self.capacity = capacity
        """The GPU nodes and GPUs held per node from the operator's watches; None: list them per plan."""
        self._catalog: tuple[float, HFJobsCatalog] | None = None
        self._lock = threading.Lock()

    def catalog(self, token: str | None) -> HFJobsCatalog:
        """HF Jobs flavors: refreshed from the Hub when reachable, else the built-in prices."""
        with self._lock:
            if self._catalog is None or time.monotonic() - self._catalog[0] > CATALOG_TTL_SECONDS:
                self._catalog = (time.monotonic(), load_catalog(self.cfg.hf_endpoint, token))
            return self._catalog[1]

    def cluster_offers(self) -> list[ClusterGpuOffer]:
        """Free and total GPUs on this cluster's nodes, when Kubernetes is an enabled backend."""
        if self.kube is None or Backend.KUBERNETES not in self.cfg.enabled_backends:
            return []
        if self.capacity is not None:
            nodes, busy = self.capacity()
            return offers_from_nodes(
                nodes,
                busy,
                self.cfg.gpu_prices,
                tolerations=self.cfg.tolerations,
                node_selector=self.cfg.node_selector,
            )
        nodes, pods = self.kube.list_nodes_and_pods()
        return offers_from_objects(
            nodes,
            pods,
            self.cfg.gpu_prices,
            tolerations=self.cfg.tolerations,
            node_selector=self.cfg.node_selector,
        )

    def plan(
        self, spec: FineTuneJobSpec, *, token: str | None, rows: int | None, mean_tokens: float | None
    ) -> PlanDecision:
        """The plan for `spec`; raises SpecError when nothing fits and RetryLater on transient errors."""
        model = load_model_info(
            spec.model.name, revision=spec.model.revision, token=token, endpoint=self.cfg.hf_endpoint
        )
        return make_plan(
            spec,
            model=model,
            dataset_rows=rows,
            mean_tokens=mean_tokens,
            catalog=self.catalog(token),
            cluster_offers=self.cluster_offers(),
            config=planner_config(self.cfg),
        )
