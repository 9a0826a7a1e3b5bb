"""The HF Jobs hardware catalog served at ``GET /api/jobs/hardware``.

Prices are the public hourly list prices; the endpoint reports them per minute in micro-dollars, as the Hub
does (``unitLabel: "minute"``). Hourly price = ``unitCostMicroUSD * 60 / 1e6``, to the cent.
"""

from __future__ import annotations

from tests.hub.models import HardwareAccelerator, HardwareFlavor

# name: (pretty name, vCPU, RAM GB, disk GB, USD per hour, (GPU model, count, VRAM GB per GPU) or None)
_CATALOG: dict[str, tuple[str, int, int, int, float, tuple[str, int, int] | None]] = {
    "cpu-basic": ("CPU Basic", 2, 16, 50, 0.01, None),
    "cpu-upgrade": ("CPU Upgrade", 8, 32, 50, 0.03, None),
    "t4-small": ("Nvidia T4 - small", 4, 15, 50, 0.40, ("T4", 1, 16)),
    "t4-medium": ("Nvidia T4 - medium", 8, 30, 100, 0.60, ("T4", 1, 16)),
    "l4x1": ("1x Nvidia L4", 8, 30, 400, 0.80, ("L4", 1, 24)),
    "l4x4": ("4x Nvidia L4", 48, 186, 3200, 3.80, ("L4", 4, 24)),
    "l40sx1": ("1x Nvidia L40S", 8, 62, 380, 1.80, ("L40S", 1, 48)),
    "l40sx4": ("4x Nvidia L40S", 48, 382, 3200, 8.30, ("L40S", 4, 48)),
    "l40sx8": ("8x Nvidia L40S", 192, 1534, 6500, 23.50, ("L40S", 8, 48)),
    "a10g-small": ("Nvidia A10G - small", 4, 15, 110, 1.00, ("A10G", 1, 24)),
    "a10g-large": ("Nvidia A10G - large", 12, 46, 200, 1.50, ("A10G", 1, 24)),
    "a10g-largex2": ("2x Nvidia A10G - large", 24, 92, 1000, 3.00, ("A10G", 2, 24)),
    "a10g-largex4": ("4x Nvidia A10G - large", 48, 184, 2000, 5.00, ("A10G", 4, 24)),
    "a100-large": ("Nvidia A100 - large", 12, 142, 1000, 2.50, ("A100", 1, 80)),
    "a100x4": ("4x Nvidia A100", 48, 568, 4000, 10.00, ("A100", 4, 80)),
    "a100x8": ("8x Nvidia A100", 96, 1136, 8000, 20.00, ("A100", 8, 80)),
    "h200": ("1x Nvidia H200", 23, 256, 3000, 5.00, ("H200", 1, 141)),
    "h200x2": ("2x Nvidia H200", 46, 512, 6000, 10.00, ("H200", 2, 141)),
    "h200x4": ("4x Nvidia H200", 92, 1024, 12000, 20.00, ("H200", 4, 141)),
    "h200x8": ("8x Nvidia H200", 184, 2048, 24000, 40.00, ("H200", 8, 141)),
    "rtx-pro-6000": ("1x Nvidia RTX PRO 6000", 24, 188, 1500, 2.75, ("RTX PRO 6000", 1, 96)),
    "rtx-pro-6000x2": ("2x Nvidia RTX PRO 6000", 48, 376, 3000, 5.50, ("RTX PRO 6000", 2, 96)),
    "rtx-pro-6000x4": ("4x Nvidia RTX PRO 6000", 96, 752, 6000, 11.00, ("RTX PRO 6000", 4, 96)),
    "rtx-pro-6000x8": ("8x Nvidia RTX PRO 6000", 192, 1504, 12000, 22.00, ("RTX PRO 6000", 8, 96)),
}


def hardware_catalog() -> list[HardwareFlavor]:
    """Build the flavor catalog.

    Returns
    -------
    list[HardwareFlavor]
        One entry per flavor, CPU flavors first, in the Hub's per-minute pricing.
    """
    flavors = []
    for name, (pretty, cpu, ram, disk, usd_per_hour, gpu) in _CATALOG.items():
        micro = round(usd_per_hour * 1_000_000 / 60)
        accelerator = None
        if gpu is not None:
            model, count, vram = gpu
            accelerator = HardwareAccelerator(
                type="gpu", model=model, quantity=str(count), vram=f"{vram * count} GB", manufacturer="Nvidia"
            )
        flavors.append(
            HardwareFlavor(
                name=name,
                pretty_name=pretty,
                cpu=f"{cpu} vCPU",
                ram=f"{ram} GB",
                ephemeral_storage=f"{disk} GB",
                accelerator=accelerator,
                unit_cost_micro_usd=micro,
                unit_cost_usd=micro / 1_000_000,
                unit_label="minute",
            )
        )
    return flavors


def flavor_names() -> frozenset[str]:
    """Return the flavor ids the Jobs API accepts.

    Returns
    -------
    frozenset[str]
        Every name of :func:`hardware_catalog`.
    """
    return frozenset(_CATALOG)
