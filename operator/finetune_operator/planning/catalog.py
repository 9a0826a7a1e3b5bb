"""Hugging Face Jobs hardware flavors with their official prices, refreshable from `GET /api/jobs/hardware`.

The built-in list is the public price list at the time of writing (USD per hour). The Hub reports prices per
minute in micro-dollars (`unitCostMicroUSD`, `unitLabel: minute`); :func:`fetch_catalog` converts them.
"""

from __future__ import annotations

import re
from typing import Any

from huggingface_hub import HfApi
from pydantic import Field

from finetune_operator.errors import RetryLater
from finetune_operator.planning.gpus import gpu_type_for
from finetune_training.camel import CamelModel


class Flavor(CamelModel):
    """One HF Jobs hardware flavor."""

    name: str
    """Flavor id passed to `run_job` (`a10g-large`)."""
    pretty_name: str | None = None
    gpu: str | None = None
    """GPU type name (`A10G`), None for CPU flavors."""
    gpu_count: int = Field(default=0, ge=0)
    gpu_memory_gib: float = Field(default=0.0, ge=0)
    """Usable memory per GPU."""
    vcpus: int | None = None
    ram_gib: float | None = None
    usd_per_hour: float = Field(ge=0)


class HFJobsCatalog(CamelModel):
    """The flavors HF Jobs offers."""

    flavors: list[Flavor]
    source: str = "built-in"
    """`built-in`, or the endpoint the list was read from."""

    def get(self, name: str) -> Flavor | None:
        """The flavor called `name`, if offered."""
        return next((f for f in self.flavors if f.name == name), None)

    def names(self) -> list[str]:
        """Every flavor id."""
        return [f.name for f in self.flavors]


# name: (GPU type, count, USD/h, vCPU, RAM GB); the official prices at the time of writing.
_BUILTIN: dict[str, tuple[str | None, int, float, int, int]] = {
    "cpu-basic": (None, 0, 0.01, 2, 16),
    "cpu-upgrade": (None, 0, 0.03, 8, 32),
    "t4-small": ("T4", 1, 0.40, 4, 15),
    "t4-medium": ("T4", 1, 0.60, 8, 30),
    "l4x1": ("L4", 1, 0.80, 8, 30),
    "l4x4": ("L4", 4, 3.80, 48, 186),
    "l40sx1": ("L40S", 1, 1.80, 8, 62),
    "l40sx4": ("L40S", 4, 8.30, 48, 382),
    "l40sx8": ("L40S", 8, 23.50, 192, 1534),
    "a10g-small": ("A10G", 1, 1.00, 4, 15),
    "a10g-large": ("A10G", 1, 1.50, 12, 46),
    "a10g-largex2": ("A10G", 2, 3.00, 24, 92),
    "a10g-largex4": ("A10G", 4, 5.00, 48, 184),
    "a100-large": ("A100", 1, 2.50, 12, 142),
    "a100x4": ("A100", 4, 10.00, 48, 568),
    "a100x8": ("A100", 8, 20.00, 96, 1136),
    "h200": ("H200", 1, 5.00, 23, 256),
    "h200x2": ("H200", 2, 10.00, 46, 512),
    "h200x4": ("H200", 4, 20.00, 92, 1024),
    "h200x8": ("H200", 8, 40.00, 184, 2048),
    "rtx-pro-6000": ("RTX PRO 6000", 1, 2.75, 24, 188),
    "rtx-pro-6000x2": ("RTX PRO 6000", 2, 5.50, 48, 376),
    "rtx-pro-6000x4": ("RTX PRO 6000", 4, 11.00, 96, 752),
    "rtx-pro-6000x8": ("RTX PRO 6000", 8, 22.00, 192, 1504),
}


def default_catalog() -> HFJobsCatalog:
    """The built-in HF Jobs price list."""
    flavors = []
    for name, (gpu, count, price, vcpus, ram) in _BUILTIN.items():
        kind = gpu_type_for(gpu) if gpu else None
        flavors.append(
            Flavor(
                name=name,
                gpu=kind.name if kind else None,
                gpu_count=count,
                gpu_memory_gib=kind.memory_gib if kind else 0.0,
                vcpus=vcpus,
                ram_gib=ram * 1e9 / 1024**3,
                usd_per_hour=price,
            )
        )
    return HFJobsCatalog(flavors=flavors)


def _number(text: str | None) -> float | None:
    match = re.search(r"[0-9]+(\.[0-9]+)?", text or "")
    return float(match.group()) if match else None


def flavor_from_hardware(item: dict[str, Any]) -> Flavor:
    """A :class:`Flavor` from one entry of `GET /api/jobs/hardware` (camelCase JSON as the Hub sends it).

    Parameters
    ----------
    item
        `{name, prettyName, cpu, ram, accelerator: {model, quantity, vram}, unitCostUSD, unitLabel}`.

    Returns
    -------
    Flavor
        Per-GPU memory from the GPU table when the model is known, else the reported VRAM split evenly.
    """
    acc = item.get("accelerator") or None
    unit = str(item.get("unitLabel") or "minute")
    per_unit = float(item.get("unitCostUSD") or 0.0)
    if not per_unit and item.get("unitCostMicroUSD") is not None:
        per_unit = float(item["unitCostMicroUSD"]) / 1e6
    usd_per_hour = round(per_unit * {"second": 3600, "minute": 60, "hour": 1}.get(unit, 60), 4)
    ram = _number(item.get("ram"))
    cpu = _number(item.get("cpu"))
    gpu_name, count, memory = None, 0, 0.0
    if acc:
        count = int(_number(str(acc.get("quantity"))) or 1)
        kind = gpu_type_for(str(acc.get("model") or ""))
        gpu_name = kind.name if kind else str(acc.get("model"))
        vram = _number(acc.get("vram"))
        memory = kind.memory_gib if kind else (vram or 0.0) * 1e9 / 1024**3 / count
    return Flavor(
        name=str(item["name"]),
        pretty_name=item.get("prettyName"),
        gpu=gpu_name,
        gpu_count=count,
        gpu_memory_gib=round(memory, 2),
        vcpus=int(cpu) if cpu else None,
        ram_gib=ram * 1e9 / 1024**3 if ram else None,
        usd_per_hour=usd_per_hour,
    )


def fetch_catalog(endpoint: str | None = None, token: str | None = None) -> HFJobsCatalog:
    """The flavors the Jobs API lists now (`HfApi.list_jobs_hardware`).

    Parameters
    ----------
    endpoint
        Hub URL; default `HF_ENDPOINT` or huggingface.co.
    token
        A Hub token (never logged).

    Returns
    -------
    HFJobsCatalog

    Raises
    ------
    RetryLater
        When the endpoint cannot be read.
    """
    api = HfApi(endpoint=endpoint, token=token)
    try:
        listed = api.list_jobs_hardware()
    except Exception as exc:  # any failure means "keep the built-in list"; callers decide
        raise RetryLater(f"cannot list HF Jobs hardware: {type(exc).__name__}: {exc}") from exc
    flavors = []
    for info in listed:
        acc = info.accelerator
        flavors.append(
            flavor_from_hardware(
                {
                    "name": info.name,
                    "prettyName": info.pretty_name,
                    "cpu": info.cpu,
                    "ram": info.ram,
                    "accelerator": (
                        {"model": acc.model, "quantity": acc.quantity, "vram": acc.vram} if acc else None
                    ),
                    "unitCostUSD": info.unit_cost_usd,
                    "unitCostMicroUSD": info.unit_cost_micro_usd,
                    "unitLabel": info.unit_label,
                }
            )
        )
    return HFJobsCatalog(flavors=flavors, source=api.endpoint)


def load_catalog(endpoint: str | None = None, token: str | None = None) -> HFJobsCatalog:
    """The live catalog when the endpoint answers, else the built-in one.

    Parameters
    ----------
    endpoint, token
        As for :func:`fetch_catalog`.

    Returns
    -------
    HFJobsCatalog
        Its `source` says which.
    """
    try:
        catalog = fetch_catalog(endpoint, token)
    except RetryLater:
        return default_catalog()
    return catalog if catalog.flavors else default_catalog()
