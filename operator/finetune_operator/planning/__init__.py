"""Hardware planning: model size, memory model, catalogs, throughput, and the policy that picks hardware.

Pure Python: no kopf, no Kubernetes client (the cluster adapter takes a `CoreV1Api` it is given); an
import-linter contract in pyproject.toml keeps it so.
"""

from finetune_operator.planning.catalog import (
    Flavor,
    HFJobsCatalog,
    default_catalog,
    fetch_catalog,
    load_catalog,
)
from finetune_operator.planning.cluster import (
    ClusterGpuOffer,
    GpuPrice,
    offers_from_objects,
)
from finetune_operator.planning.config import PlannerConfig
from finetune_operator.planning.memory import MemoryEstimate, Sharding, TrainingShape, estimate_memory
from finetune_operator.planning.model_info import (
    ModelInfo,
    load_model_info,
    model_info_from_folder,
    model_info_from_hub,
    model_info_from_parameters,
)
from finetune_operator.planning.policy import PlanDecision, PlanOption, make_plan

__all__ = [
    "ClusterGpuOffer",
    "Flavor",
    "GpuPrice",
    "HFJobsCatalog",
    "MemoryEstimate",
    "ModelInfo",
    "PlanDecision",
    "PlanOption",
    "PlannerConfig",
    "Sharding",
    "TrainingShape",
    "default_catalog",
    "estimate_memory",
    "fetch_catalog",
    "load_catalog",
    "load_model_info",
    "make_plan",
    "model_info_from_folder",
    "model_info_from_hub",
    "model_info_from_parameters",
    "offers_from_objects",
]
