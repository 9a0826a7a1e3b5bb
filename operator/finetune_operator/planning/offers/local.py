"""The Local backend's offers: the operator's own host, its GPUs (`local_gpus`) or its CPU."""

from __future__ import annotations

from finetune_operator.api.spec import Backend, HardwareSpec
from finetune_operator.errors import SpecError
from finetune_operator.planning.config import PlannerConfig
from finetune_operator.planning.offers.base import POWERS_OF_TWO, Candidate, Inputs, cpu, gpu_for


def _host(inp: Inputs, count: int | None = None) -> list[Candidate]:
    cfg = inp.config
    if cfg.local_gpus <= 0:
        return [
            Candidate(
                Backend.LOCAL,
                "Local/cpu",
                cpu(cfg.local_memory_gib, cfg.local_cpu_tflops),
                1,
                cfg.local_usd_per_hour,
            )
        ]
    product = cfg.local_gpu_product or "local-gpu"
    gpu = gpu_for(product, cfg.local_gpu_memory_gib)
    counts = [count] if count else [c for c in POWERS_OF_TWO if c <= cfg.local_gpus]
    return [
        Candidate(Backend.LOCAL, f"Local/{c}x{product}", gpu, c, cfg.local_usd_per_hour, gpu_product=product)
        for c in counts
    ]


class LocalOffers:
    rented = False
    wrong_hardware = (
        "`hardware.flavor` is an HF Jobs flavor; backend Local takes `hardware.gpuCount`/`gpuProduct`"
    )
    reason = "cheapest that fits"
    needs_catalog = False
    needs_cluster_gpus = False
    reads_local_paths = True

    def in_auto(self, config: PlannerConfig) -> bool:
        return False  # the operator's own host only when a job asks for it

    def disabled(self, config: PlannerConfig) -> PlannerConfig:
        return config

    def offered(self, inp: Inputs) -> list[Candidate]:
        return _host(inp)

    def chosen(self, inp: Inputs, hardware: HardwareSpec) -> list[Candidate] | None:
        if hardware.flavor:
            return None
        if hardware.gpu_count and hardware.gpu_count > inp.config.local_gpus:
            raise SpecError(
                "NoHardwareFits",
                f"`hardware.gpuCount` {hardware.gpu_count} but the local machine has "
                f"{inp.config.local_gpus} GPUs",
            )
        return _host(inp, hardware.gpu_count)
