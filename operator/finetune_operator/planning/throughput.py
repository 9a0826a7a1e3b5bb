"""Training and generation speed per GPU type and model size, from measurements scaled by peak TFLOPs.

Training: `tokens/s = MFU × peak FLOP/s ÷ FLOPs per token`, with FLOPs per token (Kaplan et al. 2020;
Narayanan et al. 2021): `6N` for full fine-tuning (forward 2N, backward 4N), `4N` with LoRA (the frozen
weights need no weight gradients, but activation gradients still flow: 2N forward + 2N backward), plus `2N`
when gradient checkpointing recomputes the forward. QLoRA adds the dequantisation of every matrix on every
pass: we take it as 30% slower than LoRA (the QLoRA paper and Unsloth's benchmarks report 20–40%).

MFU (hardware FLOPs utilisation, recompute counted) comes from measurements: each
:class:`ThroughputMeasurement` implies an MFU, and an estimate uses the measurement nearest in model size,
preferring the same GPU type (so a figure measured on H100 transfers to an L4 by the ratio of their
peaks, as the task of scaling "by published TFLOPs" asks). Built-in figures, measured by this project on
2026-11-25 (TRL 1.16, transformers 5.17, torch 2.11, SDPA, packed rows of 1024, bf16, randomly initialised
models of the Qwen3 shapes, real non-pad tokens/s):

- H100, Qwen3-0.6B, bfd packing into rows with a per-row block mask, no checkpointing: 52,080 tok/s
  (MFU 18.8%)
- H200, Qwen3-0.6B, packed, no checkpointing: 43,940 tok/s (15.9%)
- H200, Qwen3-4B, packed, checkpointing on: 8,949 tok/s (29% counting the recompute)

Small models are bound by per-step overhead, larger ones by math, hence the size-nearest choice. Later
runs calibrate the table by adding measurements (Helm values `config.planner.throughput_measurements`).

Multi-GPU runs scale at 90% per extra GPU (all-reduce or FSDP gathers over NVLink/PCIe).

Generation (GRPO, `model.generate` without vLLM): each decode step reads the weights once for the whole
batch, at 60% of the memory bandwidth, and pays a fixed launch overhead of 0.6 ms per layer (eager
PyTorch issues a dozen kernels per layer; measured HF generate runs at 20–40 steps/s for 7B models).
"""

from __future__ import annotations

import math

from pydantic import Field

from finetune_operator.planning.gpus import GPU_TYPES, GpuType
from finetune_training.camel import CamelModel
from finetune_training.plan import PeftMode

QLORA_SLOWDOWN = 1.3
MULTI_GPU_EFFICIENCY = 0.9
BANDWIDTH_EFFICIENCY = 0.6
STEP_OVERHEAD_PER_LAYER_S = 0.0006
TABLE_SIZES_B = (0.5, 1.5, 3.0, 7.0, 8.0, 13.0, 70.0)


class ThroughputMeasurement(CamelModel):
    """A measured training speed, from which an MFU is derived."""

    gpu: str
    """GPU type name as in `gpus.GPU_TYPES` (`H100`)."""
    parameters_billions: float = Field(gt=0)
    peft: PeftMode = PeftMode.NONE
    gradient_checkpointing: bool = False
    tokens_per_second: float = Field(gt=0)
    """Real (non-padding) training tokens per second on one GPU."""
    source: str = ""
    """Where the figure comes from."""


BUILTIN_MEASUREMENTS: tuple[ThroughputMeasurement, ...] = (
    ThroughputMeasurement(
        gpu="H100",
        parameters_billions=0.596,
        tokens_per_second=52_080,
        source="gpu-throughput.md 2026-11-25: Qwen3-0.6B, bfd rows + block mask, SDPA, no ckpt",
    ),
    ThroughputMeasurement(
        gpu="H200",
        parameters_billions=0.596,
        tokens_per_second=43_940,
        source="gpu-throughput.md 2026-11-25: Qwen3-0.6B, wrapped packing, bs16, no ckpt",
    ),
    ThroughputMeasurement(
        gpu="H200",
        parameters_billions=4.022,
        gradient_checkpointing=True,
        tokens_per_second=8_949,
        source="gpu-throughput.md 2026-11-25: Qwen3-4B, wrapped packing, ckpt on, bs4×ga4",
    ),
)


def flops_per_token(parameters: float, peft: PeftMode, gradient_checkpointing: bool) -> float:
    """Hardware FLOPs to train on one token (see the module docstring).

    Parameters
    ----------
    parameters
        Model parameters.
    peft
        None, LoRA or QLoRA.
    gradient_checkpointing
        Whether the forward is recomputed.

    Returns
    -------
    float
    """
    per_param = 6.0 if peft in (PeftMode.NONE, PeftMode.AUTO) else 4.0
    if gradient_checkpointing:
        per_param += 2.0
    return per_param * parameters


def _slowdown(peft: PeftMode) -> float:
    return QLORA_SLOWDOWN if peft == PeftMode.QLORA else 1.0


def implied_mfu(m: ThroughputMeasurement, peak_tflops: float) -> float:
    """The hardware FLOPs utilisation a measurement implies on a card of `peak_tflops`."""
    flops = flops_per_token(m.parameters_billions * 1e9, m.peft, m.gradient_checkpointing)
    return m.tokens_per_second * flops * _slowdown(m.peft) / (peak_tflops * 1e12)


def mfu_for(
    gpu: GpuType,
    parameters: float,
    measurements: tuple[ThroughputMeasurement, ...] | list[ThroughputMeasurement],
) -> float:
    """MFU for a model size on a GPU type: the size-nearest measurement, same GPU type first.

    Parameters
    ----------
    gpu
        The GPU type.
    parameters
        Model parameters.
    measurements
        Calibration figures (built-in ones plus any from the operator's configuration).

    Returns
    -------
    float
        Between 0.01 and 0.6.
    """
    known = [m for m in measurements if m.gpu in GPU_TYPES]
    same = [m for m in known if m.gpu == gpu.name]
    pool = same or known
    if not pool:
        return 0.2
    size = math.log(max(parameters, 1e6) / 1e9)
    nearest = min(pool, key=lambda m: abs(math.log(m.parameters_billions) - size))
    return min(max(implied_mfu(nearest, GPU_TYPES[nearest.gpu].peak_tflops), 0.01), 0.6)


def training_tokens_per_second(
    gpu: GpuType,
    parameters: float,
    peft: PeftMode,
    gradient_checkpointing: bool,
    *,
    gpu_count: int = 1,
    measurements: tuple[ThroughputMeasurement, ...] | list[ThroughputMeasurement] = BUILTIN_MEASUREMENTS,
) -> float:
    """Training tokens per second of a run.

    Parameters
    ----------
    gpu
        The GPU type (a CPU is described as a GpuType too).
    parameters
        Model parameters.
    peft
        None, LoRA or QLoRA.
    gradient_checkpointing
        Whether activations are recomputed.
    gpu_count
        GPUs in the run.
    measurements
        Calibration figures.

    Returns
    -------
    float
    """
    mfu = mfu_for(gpu, parameters, measurements)
    one = mfu * gpu.peak_tflops * 1e12 / flops_per_token(parameters, peft, gradient_checkpointing)
    one /= _slowdown(peft)
    return one * (1 + (gpu_count - 1) * MULTI_GPU_EFFICIENCY)


def decode_step_seconds(gpu: GpuType, weight_bytes: float, num_layers: int) -> float:
    """Seconds per decode step of `model.generate` for one batch (see the module docstring)."""
    return (
        weight_bytes / (gpu.bandwidth_gbs * 1e9 * BANDWIDTH_EFFICIENCY)
        + STEP_OVERHEAD_PER_LAYER_S * num_layers
    )


def throughput_table(
    measurements: tuple[ThroughputMeasurement, ...] | list[ThroughputMeasurement] = BUILTIN_MEASUREMENTS,
    peft: PeftMode = PeftMode.NONE,
    gradient_checkpointing: bool = True,
) -> dict[str, dict[float, float]]:
    """Training tokens/s per GPU type (rows) and model size in billions (columns), one GPU.

    Parameters
    ----------
    measurements
        Calibration figures.
    peft
        PEFT mode of the table.
    gradient_checkpointing
        Whether the runs recompute activations.

    Returns
    -------
    dict[str, dict[float, float]]
        GPU name -> {billions: tokens/s}.
    """
    return {
        name: {
            b: round(
                training_tokens_per_second(
                    g, b * 1e9, peft, gradient_checkpointing, measurements=measurements
                )
            )
            for b in TABLE_SIZES_B
        }
        for name, g in GPU_TYPES.items()
    }
