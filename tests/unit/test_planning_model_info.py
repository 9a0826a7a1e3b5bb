"""Model size and shape: from configs, local folders (safetensors headers) and the Hub's error mapping."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from huggingface_hub import constants

from finetune_operator.errors import SpecError
from finetune_operator.planning.model_info import (
    model_info_from_folder,
    model_info_from_hub,
    model_info_from_parameters,
    parameters_from_config,
)
from tests.unit.planning_fixtures import LLAMA2_7B, QWEN3_06B, QWEN3_4B, QWEN25_05B


@pytest.mark.parametrize(
    ("config", "published"),
    [
        (LLAMA2_7B, 6_738_415_616),  # Llama-2-7b-hf safetensors count
        (QWEN25_05B, 494_032_768),  # Qwen2.5-0.5B model card: 0.49B (biases ignored here)
        (QWEN3_06B, 596_049_920),  # Qwen3-0.6B safetensors count
        (QWEN3_4B, 4_022_468_096),  # Qwen3-4B safetensors count
    ],
)
def test_parameters_from_config_match_published_counts(config: dict, published: int) -> None:
    assert parameters_from_config(config) == pytest.approx(published, rel=0.01)


def test_moe_config_counts_every_expert() -> None:
    dense = parameters_from_config(QWEN3_06B)
    moe = parameters_from_config({**QWEN3_06B, "num_experts": 8, "moe_intermediate_size": 3072})
    # 28 layers, each with 7 more copies of the 3 MLP matrices and a router (hidden x experts).
    assert moe - dense == 28 * (7 * 3 * 1024 * 3072 + 1024 * 8)


def test_multimodal_config_reads_text_config() -> None:
    nested = {"architectures": ["Gemma3ForConditionalGeneration"], "text_config": dict(QWEN3_06B)}
    assert parameters_from_config(nested) == parameters_from_config(QWEN3_06B)


def _write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = 2 if dtype == "BF16" else 4
        n = 1
        for dim in shape:
            n *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n * size]}
        offset += n * size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))


def test_local_folder_counts_safetensors_headers(tmp_path: Path) -> None:
    _write_safetensors(tmp_path / "model-00001.safetensors", {"a": ("BF16", [64, 32]), "b": ("BF16", [32])})
    _write_safetensors(tmp_path / "model-00002.safetensors", {"c": ("F32", [10, 10])})
    (tmp_path / "config.json").write_text(json.dumps(QWEN3_06B))
    info = model_info_from_folder(tmp_path)
    assert info.parameters == 64 * 32 + 32 + 100
    assert (info.dtype, info.bytes_per_param) == ("BF16", 2)
    assert info.source == "local-safetensors"
    assert (info.hidden_size, info.num_layers, info.num_kv_heads, info.head_dim) == (1024, 28, 8, 128)


def test_local_folder_with_config_only(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA2_7B))
    info = model_info_from_folder(tmp_path)
    assert info.source == "local-config"
    assert info.parameters == parameters_from_config(LLAMA2_7B)
    assert info.dtype == "F16"


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda p: None, "ModelNotFound"),
        (lambda p: (p / "model.safetensors").write_bytes(b"\x10"), "ModelInvalid"),
        (lambda p: (p / "model.safetensors").write_bytes(struct.pack("<Q", 5) + b"nope!"), "ModelInvalid"),
        (lambda p: (p / "config.json").write_text("{not json"), "ModelInvalid"),
    ],
)
def test_bad_local_folders_are_spec_errors(tmp_path: Path, setup, reason: str) -> None:
    setup(tmp_path)
    with pytest.raises(SpecError) as err:
        model_info_from_folder(tmp_path)
    assert err.value.reason == reason


def test_missing_folder_is_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist") as err:
        model_info_from_folder(tmp_path / "nope")
    assert err.value.reason == "ModelNotFound"


def test_hub_offline_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SpecError, match="offline-model-params") as err:
        model_info_from_hub("Qwen/Qwen3-0.6B")
    assert err.value.reason == "HubOffline"


@pytest.mark.parametrize("count", [0.5e9, 7e9, 70e9])
def test_parameters_only_uses_the_count_given(count: float) -> None:
    info = model_info_from_parameters(count)
    assert info.parameters == int(count)
    assert info.source == "parameters-only"
    # The shape is the typical decoder nearest in size: its own count is within a factor of 2.
    assert 0.5 < parameters_from_config(info.model_dump()) / count < 2


def test_parameters_only_refuses_nonsense() -> None:
    with pytest.raises(SpecError):
        model_info_from_parameters(0)
