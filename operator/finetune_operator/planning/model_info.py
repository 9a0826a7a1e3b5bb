"""The base model's size and shape, read from the Hub or a local folder (never guessed from its name).

Order of sources, most exact first:

1. the Hub's `safetensors` summary in the model's info (parameter count per dtype, computed by the Hub),
2. the safetensors headers themselves (`HfApi.get_safetensors_metadata`: range reads, no weights),
3. `config.json`, from which the count is computed for a dense or MoE decoder
   (:func:`parameters_from_config`).

`config.json` also gives the shape (hidden size, layers, heads) the activation and KV-cache formulas need.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi
from huggingface_hub.errors import (
    EntryNotFoundError,
    LocalEntryNotFoundError,
    NotASafetensorsRepoError,
    SafetensorsParsingError,
)
from pydantic import Field

from finetune_operator.errors import SpecError
from finetune_operator.hub import HubSubject, hub_errors
from finetune_operator.validation.local import looks_local
from finetune_training.camel import CamelModel

# Bytes per element of each safetensors dtype.
DTYPE_BYTES: dict[str, float] = {
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "BF16": 2,
    "F16": 2,
    "I16": 2,
    "U16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F4": 0.5,
}
_CONFIG_DTYPES = {"bfloat16": "BF16", "float16": "F16", "float32": "F32", "float64": "F64"}
# Architectures whose MLP is a plain up/act/down (2 matrices); every other modern decoder is gated (3).
_UNGATED = {"gpt2", "gpt_neox", "gptj", "opt", "bloom", "falcon", "phi", "starcoder2", "gpt_bigcode", "mpt"}


class ModelInfo(CamelModel):
    """What the planner knows about the base model."""

    parameters: int = Field(gt=0)
    """Total parameter count (embeddings included)."""
    dtype: str = "BF16"
    """Dominant dtype of the stored weights (`BF16`, `F32`)."""
    bytes_per_param: float = Field(default=2.0, gt=0)
    """Bytes per stored parameter in that dtype."""
    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    """Key/value heads (fewer than `numHeads` with grouped-query attention)."""
    head_dim: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    """MLP width (per expert for mixture-of-experts models)."""
    gated_mlp: bool = True
    """SwiGLU-style MLP (gate, up, down) rather than up/act/down."""
    tie_word_embeddings: bool = False
    num_experts: int = 0
    """Routed experts (0: a dense model)."""
    experts_per_token: int = 0
    architecture: str | None = None
    """`config.json`'s first architecture (`Qwen3ForCausalLM`)."""
    source: str
    """Where the count came from: `hub-safetensors`, `hub-config`, `local-safetensors`, `local-config` or
    `parameters-only` (a count given by hand; the shape is then a typical decoder of that size)."""

    @property
    def embedding_parameters(self) -> int:
        """Input embedding plus the output head (once when tied): kept in 16 bits even under QLoRA."""
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    @property
    def billions(self) -> float:
        """Parameters in billions."""
        return self.parameters / 1e9


def _first(cfg: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if cfg.get(key) is not None:
            return cfg[key]
    return None


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's part of a config (multimodal configs nest it under `text_config`)."""
    if _first(config, "hidden_size", "n_embd", "d_model") is None:
        for key in ("text_config", "language_config", "llm_config"):
            if isinstance(config.get(key), dict):
                return {**config[key], "architectures": config.get("architectures")}
    return config


def shape_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """The shape fields of :class:`ModelInfo` read from a `config.json` dict.

    Parameters
    ----------
    config
        The parsed `config.json`.

    Returns
    -------
    dict
        Keyword arguments for :class:`ModelInfo` (no `parameters`, `source`).

    Raises
    ------
    ValueError
        When the config has no hidden size, layer count or head count.
    """
    cfg = _text_config(config)
    hidden = _first(cfg, "hidden_size", "n_embd", "d_model")
    layers = _first(cfg, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
    heads = _first(cfg, "num_attention_heads", "n_head", "num_heads")
    if not (hidden and layers and heads):
        raise ValueError("config.json has no hidden_size, num_hidden_layers or num_attention_heads")
    kv_heads = _first(cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv") or heads
    if cfg.get("multi_query"):
        kv_heads = 1
    experts = _first(cfg, "num_local_experts", "num_experts", "n_routed_experts") or 0
    intermediate = (
        (_first(cfg, "moe_intermediate_size") if experts else None)
        or _first(cfg, "intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size")
        or 4 * int(hidden)
    )
    model_type = str(cfg.get("model_type") or "")
    archs = config.get("architectures") or cfg.get("architectures") or []
    dtype = _CONFIG_DTYPES.get(
        str(_first(cfg, "torch_dtype", "dtype") or _first(config, "torch_dtype", "dtype"))
    )
    return {
        "hidden_size": int(hidden),
        "num_layers": int(layers),
        "num_heads": int(heads),
        "num_kv_heads": int(kv_heads),
        "head_dim": int(cfg.get("head_dim") or int(hidden) // int(heads)),
        "vocab_size": int(_first(cfg, "vocab_size", "padded_vocab_size") or 32000),
        "intermediate_size": int(intermediate),
        "gated_mlp": model_type not in _UNGATED,
        "tie_word_embeddings": bool(config.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False))),
        "num_experts": int(experts),
        "experts_per_token": int(_first(cfg, "num_experts_per_tok", "num_experts_per_token", "top_k") or 0),
        "architecture": archs[0] if archs else None,
        **({"dtype": dtype, "bytes_per_param": DTYPE_BYTES[dtype]} if dtype else {}),
    }


def parameters_from_config(config: dict[str, Any]) -> int:
    """Parameter count of a decoder-only transformer computed from its `config.json`.

    Per layer: attention q and o (`h x heads*head_dim` each), k and v (`h x kv_heads*head_dim` each),
    the MLP (3 matrices `h x intermediate` when gated, 2 when not; times the experts plus a router for
    MoE) and two norms; plus the embedding (and an untied output head) and a final norm. Biases are
    ignored (under 0.1%). Matches the safetensors count of Llama-2-7B (6.74B) and Qwen2.5-0.5B (0.49B)
    within 1%.

    Parameters
    ----------
    config
        The parsed `config.json`.

    Returns
    -------
    int
        Total parameters.
    """
    s = shape_from_config(config)
    h, d = s["hidden_size"], s["head_dim"]
    attention = 2 * h * s["num_heads"] * d + 2 * h * s["num_kv_heads"] * d
    mlp_one = (3 if s["gated_mlp"] else 2) * h * s["intermediate_size"]
    experts = s["num_experts"]
    mlp = mlp_one * experts + h * experts if experts else mlp_one
    if experts and _text_config(config).get("n_shared_experts"):
        mlp += mlp_one * int(_text_config(config)["n_shared_experts"])
    per_layer = attention + mlp + 2 * h
    embeddings = s["vocab_size"] * h * (1 if s["tie_word_embeddings"] else 2)
    return int(s["num_layers"] * per_layer + embeddings + h)


# Typical dense decoder shapes (Qwen2.5 0.5B–3B, Llama-3 8B, Llama-2 13B, Qwen2.5 32B, Llama-3 70B), used
# only when a count is given by hand (`ftjob plan --offline-model-params`), to size activations.
_TYPICAL: list[tuple[float, dict[str, int]]] = [
    (
        0.5e9,
        {
            "hidden_size": 896,
            "num_layers": 24,
            "num_heads": 14,
            "num_kv_heads": 2,
            "intermediate_size": 4864,
            "vocab_size": 151936,
        },
    ),
    (
        1.5e9,
        {
            "hidden_size": 1536,
            "num_layers": 28,
            "num_heads": 12,
            "num_kv_heads": 2,
            "intermediate_size": 8960,
            "vocab_size": 151936,
        },
    ),
    (
        3e9,
        {
            "hidden_size": 2048,
            "num_layers": 36,
            "num_heads": 16,
            "num_kv_heads": 2,
            "intermediate_size": 11008,
            "vocab_size": 151936,
        },
    ),
    (
        8e9,
        {
            "hidden_size": 4096,
            "num_layers": 32,
            "num_heads": 32,
            "num_kv_heads": 8,
            "intermediate_size": 14336,
            "vocab_size": 128256,
        },
    ),
    (
        13e9,
        {
            "hidden_size": 5120,
            "num_layers": 40,
            "num_heads": 40,
            "num_kv_heads": 40,
            "intermediate_size": 13824,
            "vocab_size": 32000,
        },
    ),
    (
        32e9,
        {
            "hidden_size": 5120,
            "num_layers": 64,
            "num_heads": 40,
            "num_kv_heads": 8,
            "intermediate_size": 27648,
            "vocab_size": 152064,
        },
    ),
    (
        70e9,
        {
            "hidden_size": 8192,
            "num_layers": 80,
            "num_heads": 64,
            "num_kv_heads": 8,
            "intermediate_size": 28672,
            "vocab_size": 128256,
        },
    ),
]


def model_info_from_parameters(parameters: float) -> ModelInfo:
    """A :class:`ModelInfo` for a parameter count given by hand, with the typical shape of that size.

    Parameters
    ----------
    parameters
        Total parameters (e.g. `7e9`).

    Returns
    -------
    ModelInfo
        Source `parameters-only`; bf16 weights assumed.
    """
    if parameters <= 0:
        raise SpecError("ModelSizeInvalid", f"the parameter count must be positive, got {parameters}")
    _, shape = min(_TYPICAL, key=lambda t: abs(math.log(t[0]) - math.log(parameters)))
    return ModelInfo(
        parameters=int(parameters),
        head_dim=shape["hidden_size"] // shape["num_heads"],
        tie_word_embeddings=parameters < 2e9,
        source="parameters-only",
        **shape,
    )


def _dominant_dtype(counts: dict[str, int]) -> str:
    return max(counts.items(), key=lambda kv: kv[1])[0] if counts else "BF16"


def _build(
    parameters: int, dtype_counts: dict[str, int], config: dict[str, Any] | None, source: str
) -> ModelInfo:
    shape: dict[str, Any] = {}
    if config is not None:
        shape = shape_from_config(config)
    else:
        # Headers alone give no shape: take the typical decoder of that size (only activations use it).
        shape = model_info_from_parameters(parameters).model_dump(
            exclude={"parameters", "source", "dtype", "bytes_per_param", "architecture"}
        )
    if dtype_counts:
        dtype = _dominant_dtype(dtype_counts)
        shape["dtype"], shape["bytes_per_param"] = dtype, DTYPE_BYTES.get(dtype, 2.0)
    return ModelInfo(parameters=parameters, source=source, **shape)


# ---- local folders -----------------------------------------------------------------------------------


def _safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file: an 8-byte little-endian length, then the header."""
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise SpecError("ModelInvalid", f"`{path}` is not a safetensors file (too short)")
        (length,) = struct.unpack("<Q", raw)
        if length > 100_000_000:
            raise SpecError(
                "ModelInvalid", f"`{path}` has a safetensors header of {length} bytes; it is corrupt"
            )
        try:
            header: dict[str, Any] = json.loads(f.read(length))
        except ValueError as exc:
            raise SpecError("ModelInvalid", f"`{path}` has an unreadable safetensors header: {exc}") from exc
    return header


def count_safetensors(paths: list[Path]) -> dict[str, int]:
    """Parameters per dtype over safetensors files, from their headers only.

    Parameters
    ----------
    paths
        `.safetensors` files.

    Returns
    -------
    dict[str, int]
        dtype -> parameter count.
    """
    counts: dict[str, int] = {}
    for path in paths:
        for name, entry in _safetensors_header(path).items():
            if name == "__metadata__":
                continue
            counts[entry["dtype"]] = counts.get(entry["dtype"], 0) + math.prod(entry["shape"])
    return counts


def _read_config(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        loaded = json.loads(path.read_text())
    except ValueError as exc:
        raise SpecError("ModelInvalid", f"`{path}` is not valid JSON: {exc}") from exc
    if not isinstance(loaded, dict):
        raise SpecError("ModelInvalid", f"`{path}` must hold a JSON object")
    return loaded


def model_info_from_folder(folder: str | Path) -> ModelInfo:
    """Model info for a local model folder (safetensors headers, else `config.json`).

    Parameters
    ----------
    folder
        A folder as `save_pretrained` writes it.

    Returns
    -------
    ModelInfo

    Raises
    ------
    SpecError
        `ModelNotFound` when the folder has neither safetensors files nor a `config.json`.
    """
    root = Path(folder)
    if not root.is_dir():
        raise SpecError("ModelNotFound", f"model folder `{root}` does not exist")
    config = _read_config(root / "config.json")
    shards = sorted(root.glob("*.safetensors"))
    if shards:
        counts = count_safetensors(shards)
        return _build(sum(counts.values()), counts, config, "local-safetensors")
    if config is not None:
        return _build(parameters_from_config(config), {}, config, "local-config")
    raise SpecError(
        "ModelNotFound",
        f"model folder `{root}` has no `*.safetensors` files and no `config.json`; "
        "point `model.name` at a folder written by `save_pretrained`",
    )


# ---- the Hub -----------------------------------------------------------------------------------------


def model_info_from_hub(
    repo_id: str,
    *,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> ModelInfo:
    """Model info from the Hub: the safetensors summary or headers, `config.json` as a fallback.

    Parameters
    ----------
    repo_id
        Model repo id.
    revision
        Branch, tag or commit; default the repo's default branch.
    token
        A Hub token (never logged).
    endpoint
        Hub URL; default `HF_ENDPOINT` or huggingface.co.

    Returns
    -------
    ModelInfo

    Raises
    ------
    SpecError
        `ModelNotFound` for a missing, private or gated model, or one with neither safetensors nor config.
    RetryLater
        For 5xx answers, rate limits and network failures.
    """
    api = HfApi(endpoint=endpoint, token=token)
    subject = HubSubject("model", repo_id, revision, token_given=bool(token))
    with hub_errors(f"reading model `{repo_id}`", subject):
        info = api.model_info(repo_id, revision=revision)
        counts: dict[str, int] = dict(info.safetensors.parameters) if info.safetensors else {}
        if not counts:
            try:
                meta = api.get_safetensors_metadata(repo_id, revision=revision)
                counts = {str(dtype): int(n) for dtype, n in meta.parameter_count.items()}
            except LocalEntryNotFoundError:
                raise  # the Hub could not be asked: not "no safetensors" (see `hub.hub_error`)
            except (NotASafetensorsRepoError, SafetensorsParsingError, EntryNotFoundError):
                counts = {}
        config: dict[str, Any] | None
        try:
            config_path = api.hf_hub_download(repo_id, "config.json", revision=revision)
            config = _read_config(Path(config_path))
        except LocalEntryNotFoundError:
            raise  # the Hub could not be asked: not "no config"
        except EntryNotFoundError:
            config = None
    if counts:
        return _build(sum(counts.values()), counts, config, "hub-safetensors")
    if config is not None:
        return _build(parameters_from_config(config), {}, config, "hub-config")
    raise SpecError(
        "ModelNotFound",
        f"model `{repo_id}` has neither safetensors weights nor a `config.json`, so its size is unknown; "
        "use a model saved with `save_pretrained`",
    )


def load_model_info(
    name: str, *, revision: str | None = None, token: str | None = None, endpoint: str | None = None
) -> ModelInfo:
    """Model info for `spec.model.name`: a local folder when the name reads as a path, else a Hub repo.

    Parameters
    ----------
    name
        Hub repo id or local folder.
    revision, token, endpoint
        As for :func:`model_info_from_hub`.

    Returns
    -------
    ModelInfo
    """
    if looks_local(name):  # by its shape: a Hub-shaped name never touches the operator's filesystem
        return model_info_from_folder(Path(name).expanduser())
    return model_info_from_hub(name, revision=revision, token=token, endpoint=endpoint)
