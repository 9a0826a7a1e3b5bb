"""Gathers the planner's inputs (model size, HF Jobs catalog, cluster GPUs) for one FineTuneJob.

The one way to plan: the operator (with its cluster) and `ftjob plan` (without one) both go through
:class:`PlannerService`, with the settings of one :class:`OperatorConfig` (see :func:`planner_config`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from finetune_operator.api.spec import FineTuneJobSpec
from finetune_operator.cluster.gateway import KubeGateway
from finetune_operator.config import OperatorConfig
from finetune_operator.planning import (
    ClusterGpuOffer,
    HFJobsCatalog,
    PlannerConfig,
    default_catalog,
    load_catalog,
    offers_from_objects,
)
from finetune_operator.planning.cluster import offers_from_nodes
from finetune_operator.planning.model_info import ModelInfo, load_model_info
from finetune_operator.planning.offers import OFFERS
from finetune_operator.planning.policy import PlanDecision, make_plan

CATALOG_TTL_SECONDS = 3600.0
MODEL_INFO_TTL_SECONDS = 300.0
"""A base model's size is read from the Hub once per model, revision and token for this long: a thousand jobs on
one model make one set of Hub calls (model info, safetensors headers, config), not a thousand."""
MODEL_INFO_ENTRIES = 256
GpuCapacity = Callable[[], tuple[list[dict[str, Any]], dict[str, int]]]
"""The nodes that offer GPUs (API JSON) and the GPUs unfinished pods hold per node name, now."""


def planner_config(cfg: OperatorConfig) -> PlannerConfig:
    """The planner's settings: `cfg.planner`, with the in-cluster prices of `cfg.gpu_prices`, and HF Jobs as
    Auto's fallback only when it is an enabled backend."""
    planner = cfg.planner.model_copy(update={"cluster_gpu_prices": list(cfg.gpu_prices)})
    for name, offers in OFFERS.items():
        if name not in cfg.enabled_backends:
            planner = offers.disabled(planner)
    return planner


class PlannerService:
    """Plans FineTuneJobs; caches the HF Jobs catalog for an hour."""

    def __init__(
        self,
        cfg: OperatorConfig,
        kube: KubeGateway | None,
        capacity: GpuCapacity | None = None,
        *,
        live_catalog: bool = True,
    ) -> None:
        self.cfg = cfg
        self.live_catalog = live_catalog
        """False: the built-in HF Jobs price list, never the Jobs API (`ftjob plan --no-live-catalog`)."""
        self.kube = kube
        self.capacity = capacity
        """The GPU nodes and GPUs held per node from the operator's watches; None: list them per plan."""
        self._catalog: tuple[float, HFJobsCatalog] | None = None
        self._lock = threading.Lock()
        self._models: OrderedDict[tuple[str, str | None, str | None], tuple[float, ModelInfo]] = OrderedDict()

    def catalog(self, token: str | None) -> HFJobsCatalog:
        """HF Jobs flavors: refreshed from the Hub when reachable, else the built-in prices."""
        with self._lock:
            if self._catalog is None or time.monotonic() - self._catalog[0] > CATALOG_TTL_SECONDS:
                fresh = load_catalog(self.cfg.hf_endpoint, token) if self.live_catalog else default_catalog()
                self._catalog = (time.monotonic(), fresh)
            return self._catalog[1]

    def cluster_offers(self) -> list[ClusterGpuOffer]:
        """Free and total GPUs on this cluster's nodes, when an enabled backend offers them (Kubernetes)."""
        if self.kube is None or not any(OFFERS[b].needs_cluster_gpus for b in self.cfg.enabled_backends):
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

    def model_info(self, spec: FineTuneJobSpec, token: str | None) -> ModelInfo:
        """The base model's size and shape, from the Hub (`hf_endpoint`) or a local folder; remembered for
        `MODEL_INFO_TTL_SECONDS` per model, revision and token (a token sees only what it was answered for: a
        repo gated for one token is asked again with another). Failures are not remembered."""
        digest = hashlib.sha256(token.encode()).hexdigest() if token else None
        key = (spec.model.name, spec.model.revision, digest)
        with self._lock:
            known = self._models.get(key)
            if known is not None and time.monotonic() - known[0] < MODEL_INFO_TTL_SECONDS:
                return known[1]
        info = load_model_info(
            spec.model.name, revision=spec.model.revision, token=token, endpoint=self.cfg.hf_endpoint
        )
        with self._lock:
            self._models[key] = (time.monotonic(), info)
            self._models.move_to_end(key)
            while len(self._models) > MODEL_INFO_ENTRIES:
                self._models.popitem(last=False)
        return info

    def plan(
        self,
        spec: FineTuneJobSpec,
        *,
        token: str | None,
        rows: int | None,
        mean_tokens: float | None,
        model: ModelInfo | None = None,
    ) -> PlanDecision:
        """The plan for `spec` (`model`: its size when already known); raises SpecError when nothing fits
        and RetryLater on transient errors."""
        model = model or self.model_info(spec, token)
        return make_plan(
            spec,
            model=model,
            dataset_rows=rows,
            mean_tokens=mean_tokens,
            catalog=self.catalog(token),
            cluster_offers=self.cluster_offers(),
            config=planner_config(self.cfg),
        )
