"""GGUF conversion, quantisation and verification with the real llama.cpp tools on a tiny Llama model.

Needs the tools from `make gguf-tools` (`make test` builds them first); without them the module skips.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from finetune_training.gguf import (
    GGUFError,
    GGUFTools,
    build_gguf,
    find_tools,
    generate_one_token,
    read_header,
    verify_gguf,
)
from finetune_training.gguf_readme import gguf_readme
from finetune_training.plan import GGUFQuant
from finetune_training.tiny import build_tiny_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tools() -> GGUFTools:
    try:
        return find_tools()
    except GGUFError as e:
        pytest.skip(f"llama.cpp GGUF tools not built (run `make gguf-tools`): {e.message}")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hidden 256: every weight row fits K-quant blocks."""
    return build_tiny_model(tmp_path_factory.mktemp("gguf") / "tiny", hidden=256)


@pytest.fixture(scope="module")
def built(tools: GGUFTools, tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("gguf-out")
    return build_gguf(tiny, [GGUFQuant.F16, GGUFQuant.Q4_K_M], out, "tiny-chat", tools=tools)


def test_files_are_named_as_llama_cpp_users_expect(built: list[Path]) -> None:
    assert [p.name for p in built] == ["tiny-chat-F16.gguf", "tiny-chat-Q4_K_M.gguf"]
    # Nothing else (no partial or intermediate file) is left for the upload to pick up.
    assert sorted(p.name for p in built[0].parent.iterdir()) == sorted(p.name for p in built)


def test_f16_file_verifies_and_generates(built: list[Path], tools: GGUFTools) -> None:
    check = verify_gguf(built[0], GGUFQuant.F16, allow_fallback=False, tools=tools)
    assert check.architecture == "llama"
    assert check.file_type == 1
    assert set(check.tensor_types) == {"F16", "F32"}
    # A locally trained byte-level BPE is unknown to the converter: the plain ByteLevel split is gpt-2.
    assert check.tokenizer_pre == "gpt-2"
    assert check.has_chat_template
    assert check.prompt == "Hello"


def test_q4_k_m_has_real_k_quants(built: list[Path], tools: GGUFTools) -> None:
    check = verify_gguf(built[1], GGUFQuant.Q4_K_M, allow_fallback=False, tools=tools)
    assert check.file_type == 15
    assert check.fallback_tensors == []
    header = read_header(built[1], tools)
    weights = {t.type for t in header.tensors if len(t.shape) == 2}
    assert weights == {"Q4_K", "Q6_K"}, header.tensor_types
    assert header.tensor_types["Q4_K"] > header.tensor_types["Q6_K"]
    assert check.size_bytes < built[0].stat().st_size / 2


def test_greedy_generation_is_the_same_token_twice(built: list[Path], tools: GGUFTools) -> None:
    assert generate_one_token(built[1], tools) == generate_one_token(built[1], tools)


def test_wrong_type_is_refused(built: list[Path], tools: GGUFTools) -> None:
    with pytest.raises(GGUFError, match="file type is 1, expected 15") as e:
        verify_gguf(built[0], GGUFQuant.Q4_K_M, tools=tools)
    assert e.value.reason == "GGUFVerifyFailed"


def test_truncated_file_is_refused(built: list[Path], tools: GGUFTools, tmp_path: Path) -> None:
    broken = tmp_path / "broken-Q4_K_M.gguf"
    broken.write_bytes(built[1].read_bytes()[:4096])
    with pytest.raises(GGUFError) as e:
        verify_gguf(broken, GGUFQuant.Q4_K_M, tools=tools)
    assert e.value.reason == "GGUFVerifyFailed"
    assert "broken-Q4_K_M.gguf" in e.value.message


def test_quant_only_build_keeps_no_f16(tiny: Path, tools: GGUFTools, tmp_path: Path) -> None:
    files = build_gguf(tiny, [GGUFQuant.Q8_0], tmp_path, "tiny-chat", tools=tools)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-chat-Q8_0.gguf"]
    check = verify_gguf(files[0], GGUFQuant.Q8_0, allow_fallback=False, tools=tools)
    assert {t for t in check.tensor_types if t != "F32"} == {"Q8_0"}


def test_rows_not_multiple_of_256_are_reported_not_silent(tools: GGUFTools, tmp_path: Path) -> None:
    narrow = build_tiny_model(tmp_path / "tiny64", hidden=64)
    [q4] = build_gguf(narrow, [GGUFQuant.Q4_K_M], tmp_path / "out", "narrow", tools=tools)
    with pytest.raises(GGUFError, match="fell back") as e:
        verify_gguf(q4, GGUFQuant.Q4_K_M, allow_fallback=False, tools=tools)
    assert e.value.reason == "GGUFVerifyFailed"
    check = verify_gguf(q4, GGUFQuant.Q4_K_M, allow_fallback=True, tools=tools)
    assert check.fallback_tensors
    assert "rows not a multiple of 256" in gguf_readme("me/narrow-GGUF", [check])


def test_unsupported_architecture_is_a_clear_error(tiny: Path, tools: GGUFTools, tmp_path: Path) -> None:
    model = tmp_path / "odd"
    shutil.copytree(tiny, model)
    config = json.loads((model / "config.json").read_text())
    config["architectures"] = ["NoSuchModelForCausalLM"]
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(GGUFError, match="NoSuchModelForCausalLM") as e:
        build_gguf(model, [GGUFQuant.F16], tmp_path / "out", "odd", tools=tools)
    assert e.value.reason == "GGUFArchitectureUnsupported"
    assert not list((tmp_path / "out").iterdir())


def test_unknown_tokenizer_without_fallback_is_a_clear_error(
    tiny: Path, tools: GGUFTools, tmp_path: Path
) -> None:
    model = tmp_path / "ws"
    shutil.copytree(tiny, model)
    tok = json.loads((model / "tokenizer.json").read_text())
    tok["pre_tokenizer"] = {"type": "Whitespace"}
    (model / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(GGUFError, match="does not recognise the tokenizer") as e:
        build_gguf(model, [GGUFQuant.F16], tmp_path / "out", "ws", tools=tools)
    assert e.value.reason == "GGUFTokenizerUnsupported"


def test_readme_lists_each_file_with_its_size(built: list[Path], tools: GGUFTools) -> None:
    checks = [verify_gguf(built[1], GGUFQuant.Q4_K_M, tools=tools)]
    text = gguf_readme(
        "me/tiny-chat-GGUF",
        checks,
        source_repo="me/tiny-chat",
        base_model="local/tiny",
        tools_version=tools.version,
    )
    assert "base_model: me/tiny-chat\nbase_model_relation: quantized" in text
    size = built[1].stat().st_size
    assert 100_000 < size < 1_000_000  # hidden 256, 2 layers: under a megabyte
    assert f"| `tiny-chat-Q4_K_M.gguf` | Q4_K_M | {size / 1e3:.2f} kB |" in text
    assert "ollama run hf.co/me/tiny-chat-GGUF:Q4_K_M" in text
    assert "llama-cli -hf me/tiny-chat-GGUF:Q4_K_M" in text
    assert "llama-cpp-python==0.3.36" in text
