"""The planner's knobs: the `planner` section of the operator's configuration (`OperatorConfig.planner`).

In the Helm chart they are `config.planner.<field>` (snake_case, as every `config` key; checked by
values.schema.json), as variables `FTJOB_PLANNER__<FIELD>`; `ftjob plan --config` reads the same file.
Two come from elsewhere in the operator: `cluster_gpu_prices` is `config.gpu_prices` (which also prices the
cluster's GPU offers), and `hf_jobs_enabled` counts only when `HFJobs` is in `config.enabled_backends`.
"""

from __future__ import annotations

from pydantic import Field

from finetune_operator.planning.cluster import GpuPrice
from finetune_operator.planning.throughput import ThroughputMeasurement
from finetune_training.camel import CamelModel


class PlannerConfig(CamelModel):
    """How hardware is chosen. Every field has a default an operator rarely needs to change."""

    prefer_cluster: bool = True
    """`backend: Auto` takes free in-cluster GPUs that fit before any HF Jobs flavor, whatever the price."""
    hf_jobs_enabled: bool = True
    """`backend: Auto` may fall back to HF Jobs (in the operator: only when `HFJobs` is an enabled backend;
    false keeps Auto in the cluster while `backend: HFJobs` still works)."""
    headroom: float = Field(default=0.12, ge=0, lt=0.9)
    """Share of each GPU's memory kept free beyond the estimate (estimates are ±10%; OOM costs a rerun)."""
    max_gpus: int = Field(default=8, ge=1, le=64)
    """Most GPUs one run may use on one node."""
    max_nodes: int = Field(default=4, ge=1, le=8)
    """Most in-cluster nodes one run may span (each with all of its GPUs, joined by torchrun): the planner
    weighs several nodes when one node's GPUs cannot hold the run (full fine-tuning of a 70B model). 1 keeps
    every run on one node."""
    auto_full_max_gpus: int = Field(default=1, ge=1, le=64)
    """`peft: Auto` keeps full fine-tuning only when it fits on this many GPUs; beyond, LoRA is far cheaper
    and nearly as good for instruction tuning (Biderman et al. 2024, "LoRA Learns Less and Forgets Less")."""
    local_gpus: int = Field(default=0, ge=0, le=64)
    """GPUs on the operator's host for `backend: Local` (0: train on CPU)."""
    local_gpu_product: str | None = None
    """Their product name (`NVIDIA-A10G`)."""
    local_gpu_memory_gib: float | None = Field(default=None, gt=0)
    """Their memory each, when the product is not in the GPU table."""
    local_memory_gib: float = Field(default=16.0, gt=0)
    """Host memory for CPU training."""
    local_cpu_tflops: float = Field(default=0.2, gt=0)
    """Host CPU fp32 TFLOPs (a 16-core AVX2 server is about 1)."""
    local_usd_per_hour: float = Field(default=0.0, ge=0)
    """What an hour of the operator's host costs (estimates and the budget guard; 0: free)."""
    cpu_max_parameters: float = Field(default=2e8, ge=0)
    """HF Jobs CPU flavors are considered only for models this small."""
    cpu_tflops_per_vcpu: float = Field(default=0.05, gt=0)
    """fp32 TFLOPs per vCPU of an HF Jobs CPU flavor."""
    cluster_gpu_prices: list[GpuPrice] = Field(default_factory=list)
    """On-prem cost per GPU-hour by product or GPU type; unpriced GPUs cost 0. In the operator's
    configuration: `gpu_prices` (Helm values `config.gpu_prices`)."""
    throughput_measurements: list[ThroughputMeasurement] = Field(default_factory=list)
    """Measured speeds that calibrate the estimates (added to the built-in ones)."""
    startup_hours: float = Field(default=0.1, ge=0)
    """Billed time before training: image pull, model and data download, compilation."""
    timeout_margin: float = Field(default=1.5, ge=1)
    """Suggested timeout = estimate × this, rounded up to 30 minutes, at least 30 minutes."""
