"""What the planner weighs (`Candidate`), what it knows (`Inputs`), and what each backend answers it (`Offers`).

Each backend's offer module (`hfjobs`, `kubernetes`, `local`) is the Kubernetes-free half of that backend:
the options it offers a job, the hardware it reads from a spec, and the few facts about it that planning,
validation and `ftjob plan` need. `policy.py` keeps only the order in which options are weighed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from finetune_operator.api.spec import Backend, HardwareSpec
from finetune_operator.planning.catalog import HFJobsCatalog
from finetune_operator.planning.cluster import ClusterGpuOffer
from finetune_operator.planning.config import PlannerConfig
from finetune_operator.planning.gpus import GPU_TYPES, GpuType, gpu_type_for
from finetune_operator.planning.model_info import ModelInfo

CPU = "CPU"
"""The name of the CPU "accelerator" (a Local run without a GPU): its memory is RAM."""
POWERS_OF_TWO = (1, 2, 4, 8, 16, 32, 64)
"""The GPU counts weighed on one machine when the spec names none."""


@dataclass(frozen=True)
class Candidate:
    """One option the planner weighs: a backend's hardware and its hourly price."""

    backend: Backend
    target: str
    gpu: GpuType
    gpu_count: int
    usd_per_hour: float
    flavor: str | None = None
    gpu_product: str | None = None
    free_now: bool = True
    nodes: int = 1
    """Machines the run spans; `gpu_count` is all of their GPUs together."""


@dataclass
class Inputs:
    """What the planner knows about one job's surroundings."""

    model: ModelInfo
    rows: int | None
    mean_tokens: float | None
    catalog: HFJobsCatalog
    offers: Sequence[ClusterGpuOffer]
    config: PlannerConfig


def cpu(memory_gib: float, tflops: float) -> GpuType:
    """A CPU as the planner weighs it: its RAM as memory, no bf16."""
    return GpuType(name=CPU, memory_gib=memory_gib, peak_tflops=tflops, bandwidth_gbs=50, bf16=False)


def gpu_for(product: str, memory_gib: float | None) -> GpuType:
    """The GPU type of `product` (its memory from a label when given)."""
    known = gpu_type_for(product)
    if known is not None:
        return known if memory_gib is None else known.model_copy(update={"memory_gib": memory_gib})
    # An unknown card: its memory from the label, speed like an A100 (a middle-of-the-road guess, stated).
    return GPU_TYPES["A100"].model_copy(update={"name": product, "memory_gib": memory_gib or 0.001})


def names_hardware(hardware: HardwareSpec | None) -> bool:
    """Whether the spec chooses hardware itself (an empty `hardware` leaves it to the planner)."""
    hw = hardware
    return bool(hw and (hw.flavor or hw.gpu_count or hw.gpu_product or hw.nodes))


class Offers(Protocol):
    """A backend's answers to the planner (registered by `spec.backend` value in `offers/__init__.py`)."""

    rented: bool
    """Its hardware is rented by the hour, in every size (HF Jobs): `backend: Auto` weighs it after the
    hardware already paid for when `preferCluster` is set, and a job too big for a fixed backend is told to
    use it."""
    wrong_hardware: str
    """The refusal of a spec that names hardware of another backend's kind (for it, `chosen` is None)."""
    reason: str
    """Why its option won when the planner chose the hardware (said in the plan's reason)."""
    needs_catalog: bool
    """Its options are priced from the HF Jobs catalog (`ftjob plan` then asks the Jobs API for it)."""
    needs_cluster_gpus: bool
    """Its options are the cluster's GPU nodes (`Inputs.offers`: gathered only when it is enabled)."""
    reads_local_paths: bool
    """Its run reads a dataset or model at a local path (under the operator's allowed roots)."""

    def in_auto(self, config: PlannerConfig) -> bool:
        """Whether `backend: Auto` may choose it."""

    def disabled(self, config: PlannerConfig) -> PlannerConfig:
        """The planner settings of an operator that does not enable this backend."""

    def offered(self, inp: Inputs) -> list[Candidate]:
        """Every option it offers when the planner picks the hardware."""

    def chosen(self, inp: Inputs, hardware: HardwareSpec) -> list[Candidate] | None:
        """The options that are the hardware the spec names; None when that hardware is not of this
        backend's kind. Raises SpecError (`HardwareInvalid`, `NoHardwareFits`) when it is, but none is."""
