"""Model size from the local Hub stand-in through the real `huggingface_hub` client, and the Jobs catalog."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi, constants

from finetune_operator.errors import RetryLater, SpecError
from finetune_operator.planning import fetch_catalog, load_catalog, model_info_from_hub
from finetune_operator.planning.model_info import parameters_from_config
from tests.hub import DEFAULT_TOKEN, HubServer, client_config, start_hub

pytestmark = pytest.mark.hub

CONFIG = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 406,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
# A tiny decoder's tensors (name -> dtype, shape): the research notes' tiny model shape, without biases.
TENSORS: dict[str, tuple[str, list[int]]] = {
    "model.embed_tokens.weight": ("BF16", [406, 64]),
    "lm_head.weight": ("BF16", [406, 64]),
    "model.norm.weight": ("F32", [64]),
    **{
        f"model.layers.{i}.{name}": ("BF16", shape)
        for i in range(2)
        for name, shape in {
            "self_attn.q_proj.weight": [64, 64],
            "self_attn.k_proj.weight": [32, 64],
            "self_attn.v_proj.weight": [32, 64],
            "self_attn.o_proj.weight": [64, 64],
            "mlp.gate_proj.weight": [128, 64],
            "mlp.up_proj.weight": [128, 64],
            "mlp.down_proj.weight": [64, 128],
            "input_layernorm.weight": [64],
            "post_attention_layernorm.weight": [64],
        }.items()
    },
}


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = 1
        for dim in shape:
            n *= dim
        size = n * (2 if dtype == "BF16" else 4)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


def count(dtype: str) -> int:
    total = 0
    for d, shape in TENSORS.values():
        if d == dtype:
            n = 1
            for dim in shape:
                n *= dim
            total += n
    return total


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with start_hub(tmp_path_factory.mktemp("hub")) as server, client_config(server, token=DEFAULT_TOKEN):
        yield server


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def api(hub: HubServer) -> HfApi:
    return HfApi(endpoint=hub.url, token=DEFAULT_TOKEN)


@pytest.fixture(scope="module")
def tiny_model(api: HfApi, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("tiny")
    (folder / "model.safetensors").write_bytes(safetensors_bytes(TENSORS))
    (folder / "config.json").write_text(json.dumps(CONFIG))
    repo_id = "tester/tiny-planner-model"
    api.create_repo(repo_id)
    api.upload_folder(repo_id=repo_id, folder_path=folder)
    return repo_id


def test_model_size_from_safetensors(hub: HubServer, tiny_model: str) -> None:
    info = model_info_from_hub(tiny_model, endpoint=hub.url)
    assert info.source == "hub-safetensors"
    assert info.parameters == count("BF16") + count("F32") == 126_016
    assert (info.dtype, info.bytes_per_param) == ("BF16", 2)
    assert (info.hidden_size, info.num_layers, info.num_kv_heads, info.architecture) == (
        64,
        2,
        2,
        "Qwen2ForCausalLM",
    )
    # The config-only formula agrees with the headers (norms included, no biases in this model).
    assert parameters_from_config(CONFIG) == info.parameters


def test_model_size_from_config_only(hub: HubServer, api: HfApi) -> None:
    repo_id = "tester/config-only"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=json.dumps(CONFIG).encode(), path_in_repo="config.json", repo_id=repo_id)
    info = model_info_from_hub(repo_id)
    assert info.source == "hub-config" and info.parameters == parameters_from_config(CONFIG)


def test_revision(hub: HubServer, api: HfApi, tiny_model: str) -> None:
    api.create_branch(tiny_model, branch="v2")
    assert model_info_from_hub(tiny_model, revision="v2").parameters == 126_016
    with pytest.raises(SpecError, match=r"model\.revision") as err:
        model_info_from_hub(tiny_model, revision="no-such-branch")
    assert err.value.reason == "ModelNotFound"


def test_missing_and_private_models(hub: HubServer, api: HfApi) -> None:
    with pytest.raises(SpecError, match="does not exist on the Hub or is private") as err:
        model_info_from_hub("tester/never-created")
    assert err.value.reason == "ModelNotFound"
    repo_id = "tester/private-model"
    api.create_repo(repo_id, private=True)
    api.upload_file(path_or_fileobj=json.dumps(CONFIG).encode(), path_in_repo="config.json", repo_id=repo_id)
    assert model_info_from_hub(repo_id).source == "hub-config"
    hub.tokens.add("hf_planner_other", "other")
    with pytest.raises(SpecError, match="tokenSecretRef"):
        model_info_from_hub(repo_id, token="hf_planner_other")


def test_gated_model(hub: HubServer, api: HfApi) -> None:
    repo_id = "tester/gated-planner-model"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=json.dumps(CONFIG).encode(), path_in_repo="config.json", repo_id=repo_id)
    api.update_repo_settings(repo_id, gated="manual")
    hub.tokens.add("hf_planner_gated", "gatedplanner")
    with pytest.raises(SpecError, match="gated") as err:
        model_info_from_hub(repo_id, token="hf_planner_gated")
    assert err.value.reason == "ModelNotFound"


def test_server_errors_are_transient(hub: HubServer, tiny_model: str) -> None:
    rule = hub.faults.server_error(r"^/api/models/", status=503, times=20)
    with pytest.raises(RetryLater):
        model_info_from_hub(tiny_model)
    assert rule.hits >= 1


def test_jobs_hardware_catalog(hub: HubServer) -> None:
    catalog = fetch_catalog(hub.url, DEFAULT_TOKEN)
    assert catalog.source == hub.url
    a10g = catalog.get("a10g-large")
    assert a10g is not None and (a10g.gpu, a10g.gpu_count, a10g.usd_per_hour) == ("A10G", 1, 1.5)
    h200x8 = catalog.get("h200x8")
    assert h200x8 is not None and (h200x8.gpu_count, h200x8.usd_per_hour) == (8, 40.0)
    assert h200x8.gpu_memory_gib == pytest.approx(140.4, abs=0.1)
    assert catalog.get("cpu-basic") is not None


def test_catalog_falls_back_when_unreachable(hub: HubServer) -> None:
    hub.faults.server_error(r"/api/jobs/hardware", status=500, times=20)
    with pytest.raises(RetryLater):
        fetch_catalog(hub.url)
    assert load_catalog(hub.url).source == "built-in"
