"""Method defaults an experienced practitioner would pick, and the spec's overrides on top.

Learning rates: LoRA trains a few million fresh parameters and wants ~10x the full fine-tuning rate
(2e-4 for SFT, the QLoRA paper's and PEFT's common choice; full SFT 2e-5, TRL's default). DPO moves a
policy only slightly away from its reference: 5e-7 full (Zephyr, Tunstall et al. 2023; TRL docs), 5e-6
with LoRA, beta 0.1 (Rafailov et al. 2023). GRPO: 1e-6 full (DeepSeekMath), 1e-5 with LoRA,
8 generations per prompt, 256 completion tokens, beta 0 (TRL 1.x: no reference model, as DAPO/Dr. GRPO
found the KL term unnecessary). Effective batch 16 sequences (4 × 4 accumulation); GRPO's micro-batch is
one prompt's generations (a multiple of `numGenerations`, as TRL requires). Packing only for SFT.
Gradient checkpointing is decided by the planner: on only when the run does not fit without it.
"""

from __future__ import annotations

from typing import Any

from finetune_operator.api.spec import HyperparametersSpec
from finetune_training.plan import Hyperparameters, Method, PeftMode

_LR: dict[tuple[Method, bool], float] = {
    (Method.SFT, False): 2e-5,
    (Method.SFT, True): 2e-4,
    (Method.DPO, False): 5e-7,
    (Method.DPO, True): 5e-6,
    (Method.GRPO, False): 1e-6,
    (Method.GRPO, True): 1e-5,
}


def method_defaults(method: Method, peft: PeftMode) -> dict[str, Any]:
    """Default hyperparameters for a method and PEFT mode (snake_case field names of `Hyperparameters`).

    Parameters
    ----------
    method
        SFT, DPO or GRPO.
    peft
        The resolved PEFT mode.

    Returns
    -------
    dict
    """
    adapter = peft in (PeftMode.LORA, PeftMode.QLORA)
    values: dict[str, Any] = {
        "epochs": 1.0,
        "learning_rate": _LR[(method, adapter)],
        "max_length": 1024,
        "per_device_batch_size": 4,
        "gradient_accumulation_steps": 4,
        "packing": method == Method.SFT,
        "gradient_checkpointing": False,
    }
    if method == Method.DPO:
        values["beta"] = 0.1
    if method == Method.GRPO:
        values.update(beta=0.0, num_generations=8, max_completion_length=256, per_device_batch_size=8)
    return values


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
