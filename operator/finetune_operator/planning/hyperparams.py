"""Method defaults an experienced practitioner would pick, and the spec's overrides on top.

The method's own learning rates and defaults (and why) are in its profile
(`finetune_training.profiles`); common to all: one epoch, 1024 tokens, an effective batch of 16 sequences
(4 × 4 accumulation). GRPO's micro-batch is one prompt's generations (a multiple of `numGenerations`, as
TRL requires). Gradient checkpointing is decided by the planner: on only when the run does not fit without it.
"""

from __future__ import annotations

from typing import Any

from finetune_operator.api.spec import HyperparametersSpec
from finetune_training.plan import Hyperparameters, Method, PeftMode
from finetune_training.profiles import profile

COMMON_DEFAULTS: dict[str, Any] = {
    "epochs": 1.0,
    "max_length": 1024,
    "per_device_batch_size": 4,
    "gradient_accumulation_steps": 4,
    "packing": False,
    "gradient_checkpointing": False,
}


def method_defaults(method: Method, peft: PeftMode) -> dict[str, Any]:
    """Default hyperparameters for a method and PEFT mode (snake_case field names of `Hyperparameters`).

    Parameters
    ----------
    method
        The training method.
    peft
        The resolved PEFT mode.

    Returns
    -------
    dict
    """
    method_profile = profile(method)
    adapter = peft in (PeftMode.LORA, PeftMode.QLORA)
    rate = method_profile.learning_rate_adapter if adapter else method_profile.learning_rate_full
    return COMMON_DEFAULTS | {"learning_rate": rate} | dict(method_profile.defaults)


def user_settings(spec: HyperparametersSpec | None) -> dict[str, Any]:
    """The hyperparameters the user set (None fields left out)."""
    return spec.model_dump(exclude_none=True) if spec else {}


def resolve_hyperparameters(
    spec: HyperparametersSpec | None, method: Method, peft: PeftMode, **planned: Any
) -> Hyperparameters:
    """Method defaults, then the planner's choices (`planned`), then the user's settings, which win.

    Parameters
    ----------
    spec
        `spec.hyperparameters`.
    method
        SFT, DPO or GRPO.
    peft
        The resolved PEFT mode.
    **planned
        Fields the planner decided (gradient checkpointing, batch split, bf16, extra args).

    Returns
    -------
    Hyperparameters
    """
    values = method_defaults(method, peft) | planned
    user = user_settings(spec)
    extra = dict(values.pop("extra_args", {}) or {}) | dict(user.pop("extra_args", {}) or {})
    values |= user
    if method == Method.GRPO:
        gens = int(values["num_generations"])
        if "per_device_batch_size" not in user and "per_device_batch_size" not in planned:
            values["per_device_batch_size"] = gens
    return Hyperparameters(**values, extra_args=extra)
