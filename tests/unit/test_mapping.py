"""finetune_training.mapping: the named conversions and renames, on the project's example datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finetune_training.mapping import (
    TURN_COLUMNS,
    MappingError,
    final_answer,
    map_row,
    mapped_columns,
    parts_to_text,
)
from finetune_training.plan import ColumnMapping, Conversion
from tests.example_data import DATASETS


def rows(name: str, n: int = 50) -> list[dict[str, Any]]:
    """The first ``n`` rows of an example dataset file."""
    path = DATASETS / name
    if name.endswith(".jsonl"):
        with path.open() as f:
            return [json.loads(line) for line, _ in zip(f, range(n), strict=False)]
    return list(json.loads(path.read_text())[:n])


def test_alpaca_becomes_conversational_prompt_completion() -> None:
    row = {"instruction": "Translate", "input": "bonjour", "output": "hello", "extra": 1}
    out = map_row(row, Conversion.ALPACA, None)
    assert out == {
        "extra": 1,
        "prompt": [{"role": "user", "content": "Translate\n\nbonjour"}],
        "completion": [{"role": "assistant", "content": "hello"}],
    }
    assert row["instruction"] == "Translate"  # the input row is left alone


def test_alpaca_with_system_and_history() -> None:
    row = {
        "instruction": "and now?",
        "input": "",
        "output": "done",
        "system": "be brief",
        "history": [["hi", "hello"]],
    }
    out = map_row(row, Conversion.ALPACA, None)
    assert [m["role"] for m in out["prompt"]] == ["system", "user", "assistant", "user"]
    assert out["prompt"][-1]["content"] == "and now?"


def test_alpaca_every_example_row_maps() -> None:
    for row in rows("alpaca.json", 999):
        out = map_row(row, Conversion.ALPACA, None)
        assert out["completion"][0]["content"] == row["output"]


def test_sharegpt_tool_calls_observations_and_tools() -> None:
    row = rows("sharegpt_tools.json", 1)[0]
    out = map_row(row, Conversion.SHAREGPT, None)
    roles = [m["role"] for m in out["messages"]]
    assert roles[:6] == ["user", "assistant", "user", "assistant", "tool", "assistant"]
    call = out["messages"][3]
    assert call["tool_calls"][0]["function"]["name"] == "get_weather"
    assert json.loads(call["tool_calls"][0]["function"]["arguments"]) == {"city": "Lisbon", "unit": "C"}
    assert isinstance(out["tools"], str) and json.loads(out["tools"])[0]["name"] == "get_weather"
    assert "conversations" not in out


def test_sharegpt_tools_list_becomes_json_and_system_column_is_prepended() -> None:
    row = {
        "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
        "system": "sys",
        "tools": [{"name": "f"}],
    }
    out = map_row(row, Conversion.SHAREGPT, None)
    assert out["messages"][0] == {"role": "system", "content": "sys"}
    assert json.loads(out["tools"]) == [{"name": "f"}]


def test_sharegpt_unknown_role_is_named() -> None:
    with pytest.raises(MappingError, match="unknown `from` value 'narrator'"):
        map_row({"conversations": [{"from": "narrator", "value": "x"}]}, Conversion.SHAREGPT, None)


def test_sharegpt_preference() -> None:
    row = rows("sharegpt_preference.json", 1)[0]
    out = map_row(row, Conversion.SHAREGPT_PREFERENCE, None)
    assert out["prompt"] == [{"role": "user", "content": row["conversations"][0]["value"]}]
    assert out["chosen"] == [{"role": "assistant", "content": row["chosen"]["value"]}]
    assert out["rejected"] == [{"role": "assistant", "content": row["rejected"]["value"]}]


def test_content_parts_flattened_and_loss_weight_dropped() -> None:
    row = rows("content_parts.jsonl", 1)[0]
    out = map_row(row, Conversion.CONTENT_PARTS, None)
    assert out["messages"][0] == {"role": "user", "content": "Explain what a Kubernetes Deployment does."}
    assert all(set(m) == {"role", "content"} for m in out["messages"])


def test_content_parts_refuses_images() -> None:
    with pytest.raises(MappingError, match="`image` part"):
        parts_to_text([{"type": "image", "url": "x"}])


def test_message_pairs_split_at_the_shared_prefix() -> None:
    row = rows("message_pairs.jsonl", 1)[0]
    out = map_row(row, Conversion.MESSAGE_PAIRS, None)
    assert [m["role"] for m in out["prompt"]] == ["system", "user"]
    assert [m["role"] for m in out["chosen"]] == ["assistant"]
    assert out["chosen"] != out["rejected"]
    assert "chosen_messages" not in out


def test_question_answer_gsm8k() -> None:
    row = rows("question_answer.jsonl", 1)[0]
    out = map_row(row, Conversion.QUESTION_ANSWER, None)
    assert out["prompt"] == [{"role": "user", "content": row["question"]}]
    assert out["answer"] == "44"
    assert out["completion"][0]["content"] == row["answer"]


@pytest.mark.parametrize(
    ("text", "final"),
    [("so 1,000\n#### 1,000", "1000"), ("thus \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"), (" 42 ", "42")],
)
def test_final_answer(text: str, final: str) -> None:
    assert final_answer(text) == final


def test_renames_apply_after_the_conversion_and_swap() -> None:
    row = {"a": 1, "b": 2}
    assert map_row(row, None, ColumnMapping(prompt="a", completion="b")) == {"prompt": 1, "completion": 2}
    swapped = map_row(
        {"prompt": "x", "completion": "y"}, None, ColumnMapping(prompt="completion", completion="prompt")
    )
    assert swapped == {"prompt": "y", "completion": "x"}
    pref = map_row(
        rows("sharegpt_preference.json", 1)[0],
        Conversion.SHAREGPT_PREFERENCE,
        ColumnMapping(completion="chosen"),
    )
    assert set(pref) == {"prompt", "completion", "rejected"}


def test_missing_columns_are_named() -> None:
    with pytest.raises(MappingError, match="`output`"):
        map_row({"instruction": "x"}, Conversion.ALPACA, None)
    with pytest.raises(MappingError, match="`response` named in `columns`"):
        map_row({"prompt": "x"}, None, ColumnMapping(completion="response"))


def test_mapped_columns_match_map_row() -> None:
    cases = {
        "alpaca.json": Conversion.ALPACA,
        "sharegpt_tools.json": Conversion.SHAREGPT,
        "sharegpt_preference.json": Conversion.SHAREGPT_PREFERENCE,
        "content_parts.jsonl": Conversion.CONTENT_PARTS,
        "message_pairs.jsonl": Conversion.MESSAGE_PAIRS,
        "question_answer.jsonl": Conversion.QUESTION_ANSWER,
    }
    for name, conversion in cases.items():
        row = rows(name, 1)[0]
        assert sorted(mapped_columns(row, conversion, None)) == sorted(map_row(row, conversion, None)), name
    row = rows("sharegpt_preference.json", 1)[0]
    cols = ColumnMapping(completion="chosen")
    assert sorted(mapped_columns(row, Conversion.SHAREGPT_PREFERENCE, cols)) == sorted(
        map_row(row, Conversion.SHAREGPT_PREFERENCE, cols)
    )


def test_datasets_map_with_tool_calls_after_the_first_batch(tmp_path: Path) -> None:
    """The runtime's recipe: List(Json()) turn columns take a tool call after the first written batch."""
    datasets = pytest.importorskip("datasets")
    plain = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    data = [plain] * 1200
    call = json.dumps({"name": "f", "arguments": {"x": 1}})
    data.append(
        {
            "conversations": [
                {"from": "human", "value": "call f"},
                {"from": "function_call", "value": call},
                {"from": "observation", "value": "{}"},
                {"from": "gpt", "value": "done"},
            ]
        }
    )
    ds = datasets.Dataset.from_list(data)

    def fn(row: dict[str, Any]) -> dict[str, Any]:
        return map_row(row, Conversion.SHAREGPT, None)

    removed = ["conversations"]
    probe = ds.select(range(1)).map(fn, remove_columns=removed)
    turns = {
        c: datasets.List(datasets.Json())
        for c in TURN_COLUMNS
        if isinstance(probe.features.get(c), datasets.List)
    }
    out = ds.map(fn, remove_columns=removed, features=datasets.Features({**probe.features, **turns}))
    assert out[1200]["messages"][1]["tool_calls"][0]["function"]["name"] == "f"
    assert out[0]["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]
