"""Peak accelerator memory of a training run, per GPU, by method (SFT, DPO, GRPO, KTO) and PEFT mode.

Formulas (bytes; `p` parameters, `h` hidden size, `L` layers, `H` heads, `kv` KV heads, `d` head dim,
`I` MLP width, `V` vocabulary, `T` tokens in one micro-batch, `a` bytes per activation: 2 in bf16, 4 in fp32):

Model states (Rajbhandari et al. 2020, "ZeRO", §3.1: mixed-precision Adam costs 16 bytes per parameter):
- full fine-tuning: weights 2 (bf16) + gradients 2 + optimizer 12 (fp32 master copy 4 + Adam m 4 + v 4)
  = 16 bytes/param. On cards without bf16 (T4, CPU) training is fp32: 4 + 4 + 8, still 16.
  HF's model-memory estimator (`accelerate estimate-memory`) gives the same: Adam training = 4x the fp32 size.
- LoRA: frozen weights 2 bytes/param; adapters (PEFT keeps them in fp32) 4 + 4 + 8 = 16 bytes each.
- QLoRA (Dettmers et al. 2023, §3): NF4 weights with double quantisation cost 4 + 0.127 bits/param
  (≈ 0.516 bytes); embeddings and the output head stay in 16 bits (bitsandbytes replaces `nn.Linear` only,
  and transformers skips `lm_head`). One matrix at a time is dequantised to bf16 while computing.

Activations (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
§4.1: `s·b·h·(34 + 5·a·s/h)` bytes per layer), generalised to grouped-query attention, gated MLPs of any
width and the attention kernels transformers uses on GPUs (SDPA flash/memory-efficient, which never
store the `s×s` scores, so the `5·a·s/h` term is gone) and no dropout. Elements stored per token per layer:
- attention: input `h` + Q `H·d` + K, V `2·kv·d` + the output fed to `o_proj` `H·d`
- MLP: input `h` + gate, up, act(gate), product `4·I` (gated) or up, act `2·I` (plain)
- two norms: `2·h`
giving `E = 4h + 2·H·d + 2·kv·d + 4I` (gated). For GPT-3's shape (`H·d = h`, `I = 4h`, plain MLP) it is
`16h` elements = 32 bytes, Korthikanti's 34 less the dropout masks. Mixture-of-experts multiplies the MLP
part by the experts each token visits.
- without checkpointing: `T · L · E · a`
- with (HF checkpoints every decoder layer): the layer inputs `T · L · h · a` ("2sbhL" in the paper)
  plus one layer recomputed during backward `T · E · a`.
- logits: `T · V · (a + 4 + a)`: the logits, their fp32 upcast for the loss and their gradient.

Calibration against this project's own H100/H200 peaks (measured 2026-11-25 with TRL 1.16,
transformers 5.17, torch 2.11, SDPA, bf16; randomly initialised models of the Qwen3 shapes), overhead
included: Qwen3-0.6B, bs16×1024 packed, no checkpointing, full fine-tuning: 50.0 GiB modelled vs 46.5
measured; Qwen3-4B, bs4×1024 with checkpointing: 70.0 vs 69.1; Qwen3-0.6B bs4 with checkpointing,
padded batches (most shorter than maxLength): 15.6 vs 10.6, the model assuming full-length rows.
See tests/unit/test_planning_memory.py.

Method specifics (TRL 1.16):
- DPO concatenates chosen and rejected: `2 × batch` sequences per step. Its reference model is a frozen
  copy loaded like the policy (fp32 for full fine-tuning, `p · 4`), except with LoRA/QLoRA, where TRL
  computes it with the adapter switched off. KTO likewise (two sequences per row: its KL pairs).
- GRPO generates with `model.generate` (no vLLM): one generation batch of `batch × steps_per_generation`
  (TRL's default: the gradient-accumulation steps) sequences holds a KV cache of
  `2 · L · kv · d · a · sequences · maxLength`. Generation runs before the training forward and frees its
  cache, so the peak is the larger of the two. Logits are computed for completion tokens only. The
  reference model exists only when `beta > 0` and no adapter can be switched off.

Multi-GPU: DDP replicates everything and adds gradient buckets (a copy of the gradients, unless
`gradient_as_bucket_view`); FSDP full-shard (ZeRO-3) divides the model states by the GPU count and
gathers two layers at a time (the one computing and the one prefetched).

Overhead: 1 GiB outside PyTorch's allocator (CUDA context ~0.5 GiB on Hopper, cuBLAS workspaces, NCCL
buffers), plus 5% for allocator fragmentation.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from finetune_operator.planning.model_info import ModelInfo
from finetune_training.camel import CamelModel
from finetune_training.plan import DTYPE_BYTES, Method, PeftMode, load_dtype
from finetune_training.profiles import profile

GIB = 1024**3
NF4_BYTES_PER_PARAM = (4 + 0.127) / 8
"""QLoRA paper §3: 4-bit NormalFloat plus double-quantised constants (0.127 bits/param)."""
FIXED_OVERHEAD_GIB = 1.0
FRAGMENTATION = 0.05


class Sharding(StrEnum):
    """How a multi-GPU run places the model."""

    NONE = "None"
    """One device."""
    DDP = "DDP"
    """Data parallel: a full replica on every GPU."""
    FSDP = "FSDP"
    """Fully sharded data parallel (ZeRO-3): weights, gradients and optimizer split across GPUs."""


class TrainingShape(BaseModel):
    """The settings that decide memory."""

    method: Method
    peft: PeftMode
    """LoRA, QLoRA or None (never Auto)."""
    max_length: int = Field(ge=1)
    """Tokens per sequence (prompt + completion for DPO and GRPO)."""
    per_device_batch_size: int = Field(ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    gradient_checkpointing: bool = True
    lora_r: int = Field(default=16, ge=1)
    lora_target_modules: list[str] = Field(default_factory=lambda: ["all-linear"])
    beta: float = 0.0
    """DPO always has a reference model; GRPO only when beta > 0."""
    num_generations: int = 8
    max_completion_length: int = 256
    bf16: bool = True
    """False on cards without bf16 and on CPU: weights and activations in fp32."""


class MemoryEstimate(CamelModel):
    """Peak memory per GPU, by component, in GiB."""

    weights_gib: float
    gradients_gib: float
    optimizer_gib: float
    reference_model_gib: float
    activations_gib: float
    """Stored activations and logits of one micro-batch (the larger of training and GRPO generation)."""
    generation_gib: float = 0.0
    """GRPO: the KV cache of one generation batch (counted in `activationsGib` when it is the larger)."""
    overhead_gib: float
    total_gib: float
    trainable_parameters: int
    gpu_count: int = 1
    sharding: Sharding = Sharding.NONE


_LLAMA_NAMES = {
    "q_proj": "q",
    "k_proj": "k",
    "v_proj": "v",
    "o_proj": "o",
    "gate_proj": "gate",
    "up_proj": "up",
    "down_proj": "down",
}


def _linears(model: ModelInfo) -> dict[str, tuple[int, int]]:
    """(in, out) of each linear layer of one decoder layer (one expert's MLP for MoE)."""
    h, hd, kvd, i = (
        model.hidden_size,
        model.num_heads * model.head_dim,
        model.num_kv_heads * model.head_dim,
        (model.intermediate_size),
    )
    shapes = {"q": (h, hd), "k": (h, kvd), "v": (h, kvd), "o": (hd, h), "up": (h, i), "down": (i, h)}
    if model.gated_mlp:
        shapes["gate"] = (h, i)
    return shapes


def lora_parameters(model: ModelInfo, r: int, target_modules: list[str]) -> int:
    """Trainable LoRA parameters: `r · (in + out)` per adapted linear layer.

    Parameters
    ----------
    model
        The base model.
    r
        Adapter rank.
    target_modules
        `all-linear` or module names (`q_proj`, `v_proj`, ...). Names this model does not know count as
        an `h × h` linear, so an unusual list is not under-counted to zero.

    Returns
    -------
    int
    """
    shapes = _linears(model)
    mlp = {"gate", "up", "down"}
    experts = max(model.num_experts, 1)
    chosen: list[str | tuple[int, int]] = []
    if any(t in ("all-linear", "all_linear") for t in target_modules):
        chosen = list(shapes)
    else:
        for name in target_modules:
            short = _LLAMA_NAMES.get(name.split(".")[-1])
            if short in shapes:
                chosen.append(short)
            else:
                chosen.append((model.hidden_size, model.hidden_size))
    total = 0
    for item in chosen:
        fan_in, fan_out = shapes[item] if isinstance(item, str) else item
        total += r * (fan_in + fan_out) * (experts if item in mlp else 1)
    return total * model.num_layers


def activation_elements_per_token_layer(model: ModelInfo) -> int:
    """`E`, the activation elements one token stores per decoder layer (see the module docstring)."""
    h, hd, kvd = model.hidden_size, model.num_heads * model.head_dim, model.num_kv_heads * model.head_dim
    mlp = (4 if model.gated_mlp else 2) * model.intermediate_size * max(model.experts_per_token, 1)
    return 4 * h + 2 * hd + 2 * kvd + mlp


def _layer_parameters(model: ModelInfo) -> int:
    shapes = _linears(model)
    mlp = {"gate", "up", "down"}
    experts = max(model.num_experts, 1)
    return sum(i * o * (experts if n in mlp else 1) for n, (i, o) in shapes.items())


def _activations(model: ModelInfo, tokens: int, logit_tokens: int, checkpointing: bool, a: int) -> float:
    per_layer = activation_elements_per_token_layer(model)
    if checkpointing:
        stored = tokens * model.num_layers * model.hidden_size * a + tokens * per_layer * a
    else:
        stored = tokens * model.num_layers * per_layer * a
    logits = logit_tokens * model.vocab_size * (a + 4 + a)
    return float(stored + logits)


def kv_cache_bytes(model: ModelInfo, sequences: int, length: int, a: int = 2) -> float:
    """KV cache of `sequences` sequences of `length` tokens: `2 · L · kv · d · a` bytes per token."""
    return float(2 * model.num_layers * model.num_kv_heads * model.head_dim * a * sequences * length)


def estimate_memory(
    model: ModelInfo, shape: TrainingShape, *, gpu_count: int = 1, sharding: Sharding = Sharding.NONE
) -> MemoryEstimate:
    """Peak memory per GPU of one training run.

    Parameters
    ----------
    model
        The base model's size and shape.
    shape
        Method, PEFT mode and the settings that change memory.
    gpu_count
        GPUs in the run (one node).
    sharding
        How the model is placed on them (ignored for one GPU).

    Returns
    -------
    MemoryEstimate
        Components and the total, per GPU, in GiB.
    """
    if shape.peft == PeftMode.AUTO:
        raise ValueError("resolve `peft: Auto` before estimating memory")
    sharding = Sharding.NONE if gpu_count <= 1 else sharding
    p = model.parameters
    a = 2 if shape.bf16 else 4  # activations: bf16 under autocast
    full = shape.peft == PeftMode.NONE
    # Weights as the runtime loads them (`load_dtype`: fp32 master weights for full fine-tuning).
    w = DTYPE_BYTES[load_dtype(shape.peft, shape.bf16)]

    # Model states.
    if shape.peft == PeftMode.QLORA:
        emb = min(model.embedding_parameters, p)
        weights = (p - emb) * NF4_BYTES_PER_PARAM + emb * 2
    else:
        weights = p * w
    trainable = p if full else lora_parameters(model, shape.lora_r, shape.lora_target_modules)
    if full:
        gradients = p * w  # gradients take the weights' dtype
        optimizer = p * 8  # Adam's two fp32 moments
    else:
        weights += trainable * 4
        gradients = trainable * 4
        optimizer = trainable * 8
    method = profile(shape.method)
    # With LoRA the reference is the base model with the adapter off: no second copy.
    reference = p * w if method.needs_reference(shape.beta) and full else 0

    # Activations of one micro-batch.
    batch = shape.per_device_batch_size
    sequences = method.sequences_per_row * batch
    if method.generates:  # the loss is over the sampled completions only
        logit_tokens = batch * min(shape.max_completion_length, shape.max_length)
    else:
        logit_tokens = sequences * shape.max_length
    activations = _activations(
        model, sequences * shape.max_length, logit_tokens, shape.gradient_checkpointing, a
    )
    if shape.peft == PeftMode.QLORA:
        # bitsandbytes dequantises one matrix at a time to bf16.
        activations += max(i * o for i, o in _linears(model).values()) * 2
    generation = 0.0
    if method.generates:
        gen_sequences = batch * shape.gradient_accumulation_steps
        generation = kv_cache_bytes(model, gen_sequences, shape.max_length, a)
        # generate() also holds one step of fp32 logits per sequence.
        generation += gen_sequences * model.vocab_size * 4
    peak_work = max(activations, generation)

    # Placement.
    states = weights + gradients + optimizer + reference
    if sharding == Sharding.FSDP:
        states = states / gpu_count + 2 * _layer_parameters(model) * a
    elif sharding == Sharding.DDP:
        states += gradients
    total = (states + peak_work) * (1 + FRAGMENTATION) + FIXED_OVERHEAD_GIB * GIB
    div = gpu_count if sharding == Sharding.FSDP else 1
    return MemoryEstimate(
        weights_gib=round(weights / div / GIB, 3),
        gradients_gib=round(gradients / div / GIB, 3),
        optimizer_gib=round(optimizer / div / GIB, 3),
        reference_model_gib=round(reference / div / GIB, 3),
        activations_gib=round(peak_work / GIB, 3),
        generation_gib=round(generation / GIB, 3),
        overhead_gib=round((total - states - peak_work) / GIB, 3),
        total_gib=round(total / GIB, 3),
        trainable_parameters=int(trainable),
        gpu_count=gpu_count,
        sharding=sharding,
    )
