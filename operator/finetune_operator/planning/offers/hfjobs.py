"""The HF Jobs backend's offers: the catalog's flavors (CPU flavors only for small models)."""

from __future__ import annotations

from finetune_operator.api.spec import Backend, HardwareSpec
from finetune_operator.errors import SpecError
from finetune_operator.planning.config import PlannerConfig
from finetune_operator.planning.offers.base import Candidate, Inputs, cpu, gpu_for


def _flavors(inp: Inputs, only: str | None = None) -> list[Candidate]:
    out = []
    for f in inp.catalog.flavors:
        if only is not None and f.name != only:
            continue
        if f.gpu_count and f.gpu:
            gpu = gpu_for(f.gpu, f.gpu_memory_gib or None)
        elif only is not None or inp.model.parameters <= inp.config.cpu_max_parameters:
            gpu = cpu(f.ram_gib or 8.0, (f.vcpus or 2) * inp.config.cpu_tflops_per_vcpu)
        else:
            continue
        out.append(
            Candidate(
                Backend.HF_JOBS, f"HFJobs/{f.name}", gpu, max(f.gpu_count, 1), f.usd_per_hour, flavor=f.name
            )
        )
    return out


class HFJobsOffers:
    rented = True
    wrong_hardware = (
        "`hardware.gpuCount`/`gpuProduct` choose in-cluster GPUs; for HF Jobs set `hardware.flavor`"
    )
    reason = "cheapest that fits"
    needs_catalog = True
    needs_cluster_gpus = False
    reads_local_paths = False

    def in_auto(self, config: PlannerConfig) -> bool:
        return config.hf_jobs_enabled

    def disabled(self, config: PlannerConfig) -> PlannerConfig:
        return config.model_copy(update={"hf_jobs_enabled": False})

    def offered(self, inp: Inputs) -> list[Candidate]:
        return _flavors(inp)

    def chosen(self, inp: Inputs, hardware: HardwareSpec) -> list[Candidate] | None:
        if not hardware.flavor:
            return None
        if inp.catalog.get(hardware.flavor) is None:
            raise SpecError(
                "HardwareInvalid",
                f"`hardware.flavor` {hardware.flavor} is not an HF Jobs flavor; use one of: "
                f"{', '.join(inp.catalog.names())}",
            )
        return _flavors(inp, only=hardware.flavor)
