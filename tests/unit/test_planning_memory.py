"""The memory model against published figures and this project's own measured peaks."""

from __future__ import annotations

import itertools

import pytest

from finetune_operator.planning.memory import (
    GIB,
    Sharding,
    TrainingShape,
    estimate_memory,
    lora_parameters,
)
from finetune_operator.planning.model_info import model_info_from_parameters
from finetune_training.plan import Method, PeftMode
from tests.unit.planning_fixtures import LLAMA2_7B, LLAMA_65B, QWEN3_06B, QWEN3_4B, info

SIZES = [0.5e9, 1.5e9, 3e9, 7e9, 8e9, 13e9, 70e9]
METHODS = [Method.SFT, Method.DPO, Method.GRPO]


def shape(method: Method = Method.SFT, peft: PeftMode = PeftMode.NONE, **kw: object) -> TrainingShape:
    values: dict = {"max_length": 1024, "per_device_batch_size": 4, "gradient_checkpointing": True} | kw
    return TrainingShape(method=method, peft=peft, **values)


def test_full_finetune_costs_16_bytes_per_parameter() -> None:
    # ZeRO §3.1 / HF's estimator: mixed-precision AdamW = 2 + 2 + 12 bytes per parameter; 7B ≈ 112 GB.
    m = estimate_memory(model_info_from_parameters(7e9), shape())
    states = (m.weights_gib + m.gradients_gib + m.optimizer_gib) * GIB
    assert states == pytest.approx(16 * 7e9, rel=1e-3)
    assert m.total_gib * GIB > 112e9


def test_full_finetune_in_fp32_is_also_16_bytes() -> None:
    m = estimate_memory(model_info_from_parameters(1e9), shape(bf16=False))
    assert (m.weights_gib + m.gradients_gib + m.optimizer_gib) * GIB == pytest.approx(16e9, rel=1e-3)


def test_bf16_weights_match_hf_estimator_load_size() -> None:
    # accelerate estimate-memory: Llama-2-7b in bf16/fp16 loads in 12.55 GiB.
    m = estimate_memory(info(LLAMA2_7B), shape(peft=PeftMode.LORA))
    frozen = m.weights_gib - m.trainable_parameters * 4 / GIB
    assert frozen == pytest.approx(12.55, abs=0.05)


def test_lora_parameters_match_peft_for_llama2_7b() -> None:
    # PEFT prints "trainable params: 39,976,960" for Llama-2-7b, r=16, all linear layers.
    assert lora_parameters(info(LLAMA2_7B), 16, ["all-linear"]) == 39_976_960
    # q_proj + v_proj only, r=8: 4,194,304 (the PEFT README's figure).
    assert lora_parameters(info(LLAMA2_7B), 8, ["q_proj", "v_proj"]) == 4_194_304


def test_lora_7b_fits_a_24gb_card() -> None:
    m = estimate_memory(info(LLAMA2_7B), shape(peft=PeftMode.LORA, per_device_batch_size=4))
    assert m.total_gib < 24e9 / GIB


def test_qlora_65b_fits_48gb() -> None:
    # QLoRA paper: 65B fine-tunes on a single 48 GB GPU (batch 1, 512 tokens, checkpointing).
    m = estimate_memory(info(LLAMA_65B), shape(peft=PeftMode.QLORA, per_device_batch_size=1, max_length=512))
    assert m.total_gib < 48e9 / GIB
    # ... and NF4 weights are about 0.52 bytes per parameter: 65B ≈ 33.6 GB plus 16-bit embeddings.
    assert 32 < m.weights_gib < 36


def test_qlora_weights_are_about_half_a_byte_per_parameter() -> None:
    model = model_info_from_parameters(70e9)
    m = estimate_memory(model, shape(peft=PeftMode.QLORA))
    frozen = m.weights_gib * GIB - m.trainable_parameters * 4
    quantized = model.parameters - model.embedding_parameters
    assert frozen == pytest.approx(quantized * 0.516 + model.embedding_parameters * 2, rel=0.01)


@pytest.mark.parametrize(
    ("config", "kw", "measured_gib", "tolerance"),
    [
        # Measured on an H100 (TRL 1.16, 2026-11-25): Qwen3-0.6B, bf16, packed, no ckpt, bs16: 46.5 GiB.
        (QWEN3_06B, {"per_device_batch_size": 16, "gradient_checkpointing": False}, 46.5, 0.12),
        # H200: Qwen3-4B, packed, ckpt on, bs4: 69.2 GiB peak.
        (QWEN3_4B, {"per_device_batch_size": 4, "gradient_checkpointing": True}, 69.2, 0.08),
    ],
)
def test_calibrated_against_measured_peaks(
    config: dict, kw: dict, measured_gib: float, tolerance: float
) -> None:
    m = estimate_memory(info(config), shape(**kw))
    assert m.total_gib == pytest.approx(measured_gib, rel=tolerance)
    assert m.total_gib >= measured_gib * 0.97  # errs on the safe side


@pytest.mark.parametrize(("size", "method"), itertools.product(SIZES, METHODS))
def test_peft_modes_order_and_checkpointing_saves(size: float, method: Method) -> None:
    model = model_info_from_parameters(size)
    totals = {
        p: estimate_memory(model, shape(method, p)).total_gib
        for p in (PeftMode.NONE, PeftMode.LORA, PeftMode.QLORA)
    }
    assert totals[PeftMode.QLORA] < totals[PeftMode.LORA] < totals[PeftMode.NONE]
    full_gb = totals[PeftMode.NONE] * GIB / 1e9
    assert full_gb > 16 * size / 1e9  # model states alone
    if method != Method.GRPO:  # GRPO's peak may be the KV cache, which checkpointing does not touch
        off = estimate_memory(model, shape(method, PeftMode.LORA, gradient_checkpointing=False)).total_gib
        assert off > totals[PeftMode.LORA]


@pytest.mark.parametrize("size", SIZES)
def test_reference_models(size: float) -> None:
    model = model_info_from_parameters(size)
    dpo_full = estimate_memory(model, shape(Method.DPO))
    # Loaded like the policy: fp32 for full fine-tuning (TRL builds it from the same `model_init_kwargs`).
    assert dpo_full.reference_model_gib == pytest.approx(size * 4 / GIB, rel=1e-3)
    assert estimate_memory(model, shape(Method.DPO, PeftMode.LORA)).reference_model_gib == 0  # adapter off
    assert estimate_memory(model, shape(Method.GRPO)).reference_model_gib == 0  # beta 0: none
    assert estimate_memory(model, shape(Method.GRPO, beta=0.04)).reference_model_gib > 0
    # KTO, like DPO, always compares with a reference (the base model with the adapter off under LoRA).
    assert estimate_memory(model, shape(Method.KTO)).reference_model_gib == dpo_full.reference_model_gib
    assert estimate_memory(model, shape(Method.KTO, PeftMode.LORA)).reference_model_gib == 0


def test_dpo_activations_cover_chosen_and_rejected() -> None:
    model = model_info_from_parameters(1.5e9)
    sft = estimate_memory(model, shape(Method.SFT, PeftMode.LORA)).activations_gib
    dpo = estimate_memory(model, shape(Method.DPO, PeftMode.LORA)).activations_gib
    assert dpo == pytest.approx(2 * sft, rel=0.01)


def test_grpo_generation_kv_cache_scales_with_generation_batch() -> None:
    model = info(LLAMA2_7B)
    small = estimate_memory(
        model, shape(Method.GRPO, PeftMode.LORA, per_device_batch_size=8, gradient_accumulation_steps=1)
    )
    large = estimate_memory(
        model, shape(Method.GRPO, PeftMode.LORA, per_device_batch_size=8, gradient_accumulation_steps=4)
    )
    # 2 (K,V) x 32 layers x 32 heads x 128 x 2 bytes = 512 KiB per token; 8 x 1024 tokens = 4 GiB.
    assert small.generation_gib == pytest.approx(4.0, rel=0.05)
    assert large.generation_gib == pytest.approx(4 * small.generation_gib, rel=0.05)
    assert large.total_gib > small.total_gib


def test_fsdp_divides_model_states_and_ddp_replicates() -> None:
    model = model_info_from_parameters(70e9)
    one = estimate_memory(model, shape())
    fsdp = estimate_memory(model, shape(), gpu_count=8, sharding=Sharding.FSDP)
    ddp = estimate_memory(model, shape(), gpu_count=8, sharding=Sharding.DDP)
    assert fsdp.optimizer_gib == pytest.approx(one.optimizer_gib / 8, rel=1e-3)
    assert fsdp.total_gib < one.total_gib / 6
    assert ddp.total_gib > one.total_gib  # replicas plus gradient buckets


def test_auto_must_be_resolved_first() -> None:
    with pytest.raises(ValueError, match="Auto"):
        estimate_memory(model_info_from_parameters(1e9), shape(peft=PeftMode.AUTO))


@pytest.mark.parametrize(("peft", "bf16"), itertools.product([PeftMode.NONE, PeftMode.LORA], [True, False]))
def test_the_planner_charges_the_weights_as_the_runtime_loads_them(peft: PeftMode, bf16: bool) -> None:
    """One decision (`load_dtype`), two readers: the memory model and the runtime's `from_pretrained`
    arguments. A 7B LoRA in bf16 is 13 GiB of frozen weights, not the 26 GiB an fp32 load would take."""
    from finetune_training.methods import model_init_kwargs
    from finetune_training.plan import DTYPE_BYTES, TrainingPlan

    plan = TrainingPlan.model_validate(
        {"job": {"name": "j"}, "model": "m", "dataset": {"name": "d"}, "method": "SFT", "peft": peft.value,
         "tracking": {"project": "p", "runName": "r"}}
    )  # fmt: skip
    loaded = model_init_kwargs(plan, bf16)["dtype"]
    model = info(LLAMA2_7B)
    m = estimate_memory(model, shape(peft=peft, bf16=bf16))
    adapter = 0 if peft == PeftMode.NONE else m.trainable_parameters * 4  # LoRA weights train in fp32
    frozen = m.weights_gib * GIB - adapter
    assert frozen == pytest.approx(model.parameters * DTYPE_BYTES[loaded], rel=1e-3)
