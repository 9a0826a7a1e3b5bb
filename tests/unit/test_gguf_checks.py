"""GGUF logic that needs no llama.cpp binaries: tool lookup, pre-tokenizer choice, type checks, README."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune_training.gguf import (
    GGUFCheck,
    GGUFError,
    GGUFHeader,
    GGUFTensor,
    build_gguf,
    check_tensor_types,
    find_tools,
    gguf_filename,
    infer_pre_tokenizer,
)
from finetune_training.gguf_readme import gguf_readme
from finetune_training.plan import GGUFQuant

QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)


def _tokenizer_dir(tmp_path: Path, pre_tokenizer: object) -> Path:
    (tmp_path / "tokenizer.json").write_text(json.dumps({"pre_tokenizer": pre_tokenizer}))
    return tmp_path


def _split_then_bytes(regex: str) -> dict[str, object]:
    return {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        ],
    }


def test_missing_tools_name_the_make_target(tmp_path: Path) -> None:
    with pytest.raises(GGUFError) as e:
        find_tools(tmp_path / "nowhere")
    assert e.value.reason == "GGUFToolsMissing"
    assert "make gguf-tools" in e.value.message
    assert "llama-quantize" in e.value.message


def test_env_var_names_the_tools_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTJOB_LLAMA_CPP", str(tmp_path / "from-env"))
    with pytest.raises(GGUFError, match="from-env"):
        find_tools()


def test_model_folder_without_config_is_refused_before_any_tool(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match=r"no config\.json") as e:
        build_gguf(tmp_path, [GGUFQuant.Q4_K_M], tmp_path / "out", "m")
    assert e.value.reason == "GGUFModelInvalid"


@pytest.mark.parametrize(
    ("pre", "expected"),
    [
        ({"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}, "gpt-2"),
        ({"type": "ByteLevel", "add_prefix_space": False}, "gpt-2"),
        ({"type": "ByteLevel", "use_regex": False}, None),
        (_split_then_bytes(QWEN2_REGEX), "qwen2"),
        (_split_then_bytes(LLAMA3_REGEX), "llama-bpe"),
        (_split_then_bytes(r"\s+"), None),
        ({"type": "Whitespace"}, None),
        (None, None),
    ],
)
def test_pre_tokenizer_from_split_rules(tmp_path: Path, pre: object, expected: str | None) -> None:
    assert infer_pre_tokenizer(_tokenizer_dir(tmp_path, pre)) == expected


def test_no_tokenizer_json_means_no_fallback(tmp_path: Path) -> None:
    assert infer_pre_tokenizer(tmp_path) is None


def _header(file_type: int, types: list[str]) -> GGUFHeader:
    tensors = [GGUFTensor(name=f"blk.{i}.w", type=t, shape=[256, 256]) for i, t in enumerate(types)]
    counts: dict[str, int] = {}
    for t in types:
        counts[t] = counts.get(t, 0) + 1
    return GGUFHeader(architecture="llama", file_type=file_type, tensor_types=counts, tensors=tensors)


def test_k_quant_mix_passes() -> None:
    assert check_tensor_types(_header(15, ["F32", "Q4_K", "Q4_K", "Q6_K"]), GGUFQuant.Q4_K_M) == []


def test_k_quant_fallback_is_listed() -> None:
    header = _header(15, ["F32", "Q5_0", "Q8_0", "Q6_K"])
    assert check_tensor_types(header, GGUFQuant.Q4_K_M) == ["blk.1.w", "blk.2.w"]


def test_wrong_file_type_fails() -> None:
    with pytest.raises(GGUFError, match="file type is 7, expected 15"):
        check_tensor_types(_header(7, ["Q8_0"]), GGUFQuant.Q4_K_M)


def test_unquantised_file_labelled_quantised_fails() -> None:
    with pytest.raises(GGUFError, match="no tensor of a Q8_0 file is quantised"):
        check_tensor_types(_header(7, ["F32", "F16"]), GGUFQuant.Q8_0)


def test_f16_with_quantised_tensors_fails() -> None:
    with pytest.raises(GGUFError, match="F16 file has quantised tensors"):
        check_tensor_types(_header(1, ["F16", "Q4_K"]), GGUFQuant.F16)


def test_file_names() -> None:
    assert gguf_filename("tiny-chat", GGUFQuant.Q4_K_M) == "tiny-chat-Q4_K_M.gguf"
    assert gguf_filename("tiny-chat", GGUFQuant.F16) == "tiny-chat-F16.gguf"


def _check(name: str, quant: GGUFQuant, size: int, chat: bool = True) -> GGUFCheck:
    return GGUFCheck(
        path=Path("/out") / name,
        quant=quant,
        size_bytes=size,
        architecture="qwen2",
        file_type=15,
        tensor_types={"Q4_K": 1},
        has_chat_template=chat,
        prompt="Hello",
        generated=" world",
    )


def test_readme_table_and_run_commands() -> None:
    checks = [
        _check("bot-F16.gguf", GGUFQuant.F16, 988_000_000),
        _check("bot-Q4_K_M.gguf", GGUFQuant.Q4_K_M, 397_800_000),
    ]
    text = gguf_readme(
        "org/bot-GGUF", checks, base_model="Qwen/Qwen2.5-0.5B", job="ml/bot", tools_version="x==1"
    )
    front, body = text.split("---\n")[1:3]
    assert "base_model: Qwen/Qwen2.5-0.5B" in front
    assert "base_model_relation" not in front
    assert "| `bot-F16.gguf` | F16 | 988.00 MB |" in body
    assert "| `bot-Q4_K_M.gguf` | Q4_K_M | 397.80 MB |" in body
    # Q4_K_M is what the run commands use when it is there, whatever the table order.
    assert "ollama run hf.co/org/bot-GGUF:Q4_K_M" in body
    assert "hf download org/bot-GGUF bot-Q4_K_M.gguf --local-dir ." in body
    assert "FineTuneJob `ml/bot`" in body
    assert "chat template is embedded" in body
    assert "x==1" in body


def test_readme_without_files_says_nothing_to_run() -> None:
    text = gguf_readme("org/bot-GGUF", [], source_repo="org/bot")
    assert "base_model: org/bot\nbase_model_relation: quantized" in text
    assert "ollama" not in text
