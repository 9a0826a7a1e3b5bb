"""Training time, cost and a suggested timeout for one hardware option.

Tokens = rows × mean tokens per row (capped at `maxLength`) × epochs; `maxSteps` overrides with
steps × sequences per step. Assumptions, method by method:

- SFT: packed rows waste nothing; without packing, batches are padded to their longest row, which the
  project's measurements put at 35% padding (Qwen3-0.6B and 4B shapes, padded batches of rows of
  64–1024 tokens, on an H100 and an H200 with TRL 1.16, 2026-11-25), so tokens / 0.65.
- DPO: each row is two sequences (prompt + chosen, prompt + rejected), `mean tokens` counting one of
  them; the reference log-probs cost one more forward pass (2N FLOPs per token).
- GRPO: each prompt row is completed `numGenerations` times with up to `maxCompletionLength` tokens
  (full length assumed: an upper bound), in generation batches of `batch × accumulation` sequences per
  GPU; decoding is memory-bound (see throughput.py) and usually dominates the cost. The generated
  sequences are then trained on (prompt + completion tokens), plus a reference forward when `beta > 0`.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from finetune_operator.planning.gpus import GpuType
from finetune_operator.planning.memory import NF4_BYTES_PER_PARAM
from finetune_operator.planning.model_info import ModelInfo
from finetune_operator.planning.throughput import (
    ThroughputMeasurement,
    decode_step_seconds,
    flops_per_token,
    training_tokens_per_second,
)
from finetune_training.plan import Hyperparameters, Method, PeftMode
from finetune_training.profiles import profile

PADDED_EFFICIENCY = 0.65


class TimeEstimate(BaseModel):
    """Time for one run on one hardware option."""

    hours: float
    """Start-up plus training (and generation)."""
    tokens: int | None
    """Training tokens over all epochs (None when the dataset size is unknown)."""
    generation_hours: float = 0.0
    """GRPO: the part spent generating."""


def estimate_time(
    *,
    model: ModelInfo,
    method: Method,
    peft: PeftMode,
    hp: Hyperparameters,
    gpu: GpuType,
    gpu_count: int,
    rows: int | None,
    mean_tokens: float | None,
    startup_hours: float,
    measurements: list[ThroughputMeasurement],
) -> TimeEstimate:
    """Estimated wall time of a run.

    Parameters
    ----------
    model
        The base model.
    method, peft, hp
        What is trained and how.
    gpu, gpu_count
        The hardware (a CPU is a GpuType too).
    rows
        Dataset rows (None: unknown).
    mean_tokens
        Mean tokens per row (None: half of `maxLength` is assumed).
    startup_hours
        Fixed time before training.
    measurements
        Throughput calibration.

    Returns
    -------
    TimeEstimate
    """
    n = model.parameters
    per_row = min(mean_tokens if mean_tokens else hp.max_length / 2, hp.max_length)
    micro_sequences = hp.per_device_batch_size * hp.gradient_accumulation_steps * gpu_count
    if hp.max_steps > 0:
        sequences = hp.max_steps * micro_sequences
        rows_seen: float | None = sequences / profile(method).sequences_per_row
        if hp.packing:  # packed rows are full sequences
            per_row = hp.max_length
    elif rows is not None:
        rows_seen = rows * hp.epochs
    else:
        return TimeEstimate(hours=startup_hours, tokens=None)
    assert rows_seen is not None
    tps = training_tokens_per_second(
        gpu, n, peft, hp.gradient_checkpointing, gpu_count=gpu_count, measurements=measurements
    )
    train_flops = flops_per_token(n, peft, hp.gradient_checkpointing)
    seconds = 0.0
    generation_seconds = 0.0
    method_profile = profile(method)
    # A reference model (DPO; GRPO with a KL term) costs one more forward pass per token, LoRA or not.
    extra = 2 * n if method_profile.needs_reference(hp.beta) else 0
    if method_profile.generates:
        gens = hp.num_generations or method_profile.default("num_generations")
        completion = hp.max_completion_length or method_profile.default("max_completion_length")
        prompt = min(per_row, max(hp.max_length - completion, 1))
        completions = rows_seen * gens if hp.max_steps <= 0 else rows_seen
        tokens = completions * (prompt + completion)
        seconds = tokens / (tps * train_flops / (train_flops + extra))
        weight_bytes = n * (NF4_BYTES_PER_PARAM if peft == PeftMode.QLORA else (2 if gpu.bf16 else 4))
        batches = completions / micro_sequences
        generation_seconds = batches * completion * decode_step_seconds(gpu, weight_bytes, model.num_layers)
        seconds += generation_seconds
    else:
        tokens = rows_seen * per_row * method_profile.sequences_per_row
        padding = 1.0 if hp.packing else PADDED_EFFICIENCY
        seconds = tokens / (tps * train_flops / (train_flops + extra)) / padding
    return TimeEstimate(
        hours=startup_hours + seconds / 3600,
        tokens=int(tokens),
        generation_hours=generation_seconds / 3600,
    )


def format_duration(hours: float) -> str:
    """A duration string as `budget.timeout` takes it (`2h30m`, `45m`).

    Parameters
    ----------
    hours
        Duration in hours.

    Returns
    -------
    str
    """
    minutes = max(round(hours * 60), 1)
    h, m = divmod(minutes, 60)
    if h and m:
        return f"{h}h{m}m"
    return f"{h}h" if h else f"{m}m"


def suggested_timeout_hours(hours: float, margin: float) -> float:
    """Estimate × margin, rounded up to 30 minutes, at least 30 minutes.

    Parameters
    ----------
    hours
        The estimate.
    margin
        Safety factor (estimates are rough).

    Returns
    -------
    float
    """
    return max(math.ceil(hours * margin * 2) / 2, 0.5)
