"""Accelerator types: the facts about each GPU that memory, catalogs and throughput share.

Peak dense bf16 tensor TFLOPs (fp16 for the T4, which has no bf16) and memory bandwidth come from the
vendors' data sheets: T4 65 TF / 320 GB/s, L4 121 / 300, A10G ~70 dense (125 is the sparse/fp16
marketing figure; AWS's A10G is an A10 variant at 31.2 TF fp32, 70 TF dense bf16) / 600, L40S 362 / 864,
A100 80GB 312 / 2039, H100 SXM 989 / 3350, H200 989 / 4800, RTX PRO 6000 Blackwell ~500 / 1792.
Usable memory is what `nvidia-smi` (and the GPU operator's `nvidia.com/gpu.memory` label) reports, in MiB.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field


class GpuType(BaseModel):
    """One accelerator model."""

    name: str
    """Short name used in tables (`H100`, `A10G`)."""
    memory_gib: float = Field(gt=0)
    """Usable memory per GPU, GiB."""
    peak_tflops: float = Field(gt=0)
    """Dense 16-bit tensor TFLOPs (bf16, or fp16 where the card has no bf16)."""
    bandwidth_gbs: float = Field(gt=0)
    """Memory bandwidth, GB/s (bounds token generation)."""
    bf16: bool = True
    """Whether the card computes in bf16 (T4 does not: training falls back to fp32 there)."""


def _mib(mib: int) -> float:
    return round(mib / 1024, 2)


GPU_TYPES: dict[str, GpuType] = {
    g.name: g
    for g in (
        GpuType(name="T4", memory_gib=_mib(15360), peak_tflops=65, bandwidth_gbs=320, bf16=False),
        GpuType(name="L4", memory_gib=_mib(23034), peak_tflops=121, bandwidth_gbs=300),
        GpuType(name="A10G", memory_gib=_mib(23028), peak_tflops=70, bandwidth_gbs=600),
        GpuType(name="L40S", memory_gib=_mib(46068), peak_tflops=362, bandwidth_gbs=864),
        GpuType(name="A100", memory_gib=_mib(81920), peak_tflops=312, bandwidth_gbs=2039),
        GpuType(name="A100-40GB", memory_gib=_mib(40960), peak_tflops=312, bandwidth_gbs=1555),
        GpuType(name="H100", memory_gib=_mib(81559), peak_tflops=989, bandwidth_gbs=3350),
        GpuType(name="H200", memory_gib=_mib(143771), peak_tflops=989, bandwidth_gbs=4800),
        GpuType(name="RTX PRO 6000", memory_gib=_mib(97887), peak_tflops=500, bandwidth_gbs=1792),
    )
}

# Node label values (`nvidia.com/gpu.product`) and Jobs accelerator names, matched in order.
_PRODUCT_PATTERNS: list[tuple[str, str]] = [
    (r"H200", "H200"),
    (r"H100", "H100"),
    (r"A100.*40GB|A100-PCIE-40GB|A100-SXM4-40GB", "A100-40GB"),
    (r"A100", "A100"),
    (r"L40S", "L40S"),
    (r"A10G", "A10G"),
    (r"(^|[^0-9A-Z])L4($|[^0-9])", "L4"),
    (r"T4", "T4"),
    (r"RTX[ _-]?PRO[ _-]?6000", "RTX PRO 6000"),
]


def gpu_type_for(product: str) -> GpuType | None:
    """The known GPU type a product string names (`NVIDIA-H100-80GB-HBM3`, `Tesla-T4`, `L40S`).

    Parameters
    ----------
    product
        A `nvidia.com/gpu.product` label value or an HF Jobs accelerator model.

    Returns
    -------
    GpuType | None
        None for a product this table does not know.
    """
    upper = product.upper()
    for pattern, name in _PRODUCT_PATTERNS:
        if re.search(pattern, upper):
            return GPU_TYPES[name]
    return None
