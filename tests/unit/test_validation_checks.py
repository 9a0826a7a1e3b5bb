"""Structural checks: roles, assistant turns, empty content, DPO pairs, GRPO prompts and answers, lengths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finetune_operator.api.status import Verdict
from finetune_operator.validation import DatasetReport, Severity, inspect_dataset
from finetune_training.plan import ColumnMapping, DatasetSource

U = {"role": "user", "content": "What is 2+2?"}
A = {"role": "assistant", "content": "4"}
S = {"role": "system", "content": "Be brief."}


def write(tmp_path: Path, rows: list[dict[str, Any]], name: str = "d.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def inspect(path: str, **kwargs: Any) -> DatasetReport:
    return inspect_dataset(DatasetSource(name=path), **kwargs)


def finding(report: DatasetReport, check: str, method: str | None) -> Any:
    found = [f for f in report.findings if f.check == check and f.method == method]
    assert found, [(f.check, f.method) for f in report.findings]
    return found[0]


def test_messages_ready(tmp_path: Path) -> None:
    report = inspect(write(tmp_path, [{"messages": [S, U, {**A, "content": f"{i}"}]} for i in range(10)]))
    sft = report.verdict("SFT")
    assert sft is not None and sft.verdict == Verdict.READY
    assert report.findings == []
    assert report.warnings == []


def test_no_assistant_turn_anywhere_is_incompatible(tmp_path: Path) -> None:
    report = inspect(write(tmp_path, [{"messages": [S, {**U, "content": f"q{i}"}]} for i in range(10)]))
    sft = report.verdict("SFT")
    assert sft is not None and sft.verdict == Verdict.INCOMPATIBLE
    assert "no assistant turn" in sft.reason


def test_some_rows_without_assistant_turn_are_counted_and_scaled(tmp_path: Path) -> None:
    rows = [{"messages": [{**U, "content": f"q{i}"}, A]} for i in range(8)] + [
        {"messages": [{**U, "content": f"x{i}"}]} for i in range(2)
    ]
    report = inspect(write(tmp_path, rows))
    assert report.ready("SFT")
    f = finding(report, "NoAssistantTurn", "SFT")
    assert (f.sample_rows, f.share, f.estimated_rows, f.examples) == (2, 0.2, 2, [8, 9])
    assert f.severity == Severity.ERROR
    assert any("no assistant turn" in w for w in report.warnings)


def test_invalid_roles_stop_sft(tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "human", "content": f"q{i}"}, A]} for i in range(5)]
    sft = inspect(write(tmp_path, rows)).verdict("SFT")
    assert sft is not None and sft.verdict == Verdict.INCOMPATIBLE and "'human'" in sft.reason


def test_role_order_and_empty_content_are_warnings(tmp_path: Path) -> None:
    rows = [{"messages": [{**A, "content": f"a{i}"}, U, A]} for i in range(4)] + [
        {"messages": [U, {"role": "assistant", "content": "  "}, U, A]}
    ]
    report = inspect(write(tmp_path, rows))
    assert report.ready("SFT")
    assert finding(report, "RoleOrder", "SFT").sample_rows == 4
    assert finding(report, "EmptyContent", "SFT").sample_rows == 1


def test_content_of_the_wrong_type(tmp_path: Path) -> None:
    rows = [{"messages": [U, A]} for _ in range(3)] + [{"messages": [U, {"role": "assistant", "content": 5}]}]
    sft = inspect(write(tmp_path, rows)).verdict("SFT")
    assert sft is not None and sft.verdict == Verdict.INCOMPATIBLE and "not a string" in sft.reason


def test_dpo_chosen_equals_rejected(tmp_path: Path) -> None:
    same = [{"prompt": f"p{i}", "chosen": "a", "rejected": "a"} for i in range(5)]
    dpo = inspect(write(tmp_path, same)).verdict("DPO")
    assert dpo is not None and dpo.verdict == Verdict.INCOMPATIBLE and "identical" in dpo.reason
    mixed = [{"prompt": f"p{i}", "chosen": "good", "rejected": "bad" if i else "good"} for i in range(5)]
    report = inspect(write(tmp_path, mixed, "m.jsonl"))
    assert report.ready("DPO")
    assert finding(report, "ChosenEqualsRejected", "DPO").sample_rows == 1


def test_dpo_implicit_prompt(tmp_path: Path) -> None:
    shared = [
        {
            "chosen": [{**U, "content": f"q{i}"}, A],
            "rejected": [{**U, "content": f"q{i}"}, {**A, "content": "5"}],
        }
        for i in range(4)
    ]
    report = inspect(write(tmp_path, shared))
    assert report.ready("DPO") and not [f for f in report.findings if f.check == "NoSharedPrompt"]
    apart = [{"chosen": [{**U, "content": "a"}, A], "rejected": [{**U, "content": "b"}, A]}]
    assert finding(inspect(write(tmp_path, apart, "x.jsonl")), "NoSharedPrompt", "DPO").sample_rows == 1


def test_grpo_prompt_and_answer(tmp_path: Path) -> None:
    rows = [{"prompt": [{**U, "content": f"{i}+1?"}], "answer": str(i + 1)} for i in range(6)]
    report = inspect(write(tmp_path, rows))
    assert report.ready("GRPO")
    no_answer = inspect(write(tmp_path, [{"prompt": r["prompt"]} for r in rows], "n.jsonl")).verdict("GRPO")
    assert (
        no_answer is not None
        and no_answer.verdict == Verdict.INCOMPATIBLE
        and "reference answer" in no_answer.reason
    )
    # No built-in reward needs an answer: prompts alone are enough.
    assert inspect(
        write(tmp_path, [{"prompt": r["prompt"]} for r in rows], "o.jsonl"), answer_column=None
    ).ready("GRPO")


def test_grpo_answer_from_a_solution_column(tmp_path: Path) -> None:
    rows = [{"prompt": f"{i}+1?", "final_answer": str(i + 1)} for i in range(6)]
    grpo = inspect(write(tmp_path, rows)).verdict("GRPO")
    assert grpo is not None and grpo.verdict == Verdict.NEEDS_MAPPING
    assert grpo.columns == ColumnMapping(answer="final_answer")


def test_grpo_empty_prompts_and_prompt_ending_with_assistant(tmp_path: Path) -> None:
    empty = inspect(write(tmp_path, [{"prompt": "", "answer": "1"}] * 3)).verdict("GRPO")
    assert empty is not None and empty.verdict == Verdict.INCOMPATIBLE and "prompt is empty" in empty.reason
    rows = [{"prompt": [U, A], "answer": "4"}, {"prompt": [U], "answer": "4"}]
    report = inspect(write(tmp_path, rows, "e.jsonl"))
    assert finding(report, "PromptEndsWithAssistant", "GRPO").sample_rows == 1


def test_duplicates_and_mixed_types(tmp_path: Path) -> None:
    rows = [{"text": "same"}] * 3 + [{"text": f"t{i}"} for i in range(6)] + [{"text": 7}]
    report = inspect(write(tmp_path, rows))
    assert report.duplicate_share == pytest.approx(0.2)
    assert finding(report, "DuplicateRows", None).examples == [1, 2]
    assert "`text` holds string (9), number (1)" in finding(report, "MixedTypes", None).message


def test_lengths_against_max_length_are_estimated(tmp_path: Path) -> None:
    rows = [{"text": "x" * 400}] * 3 + [{"text": "y" * 4000}]
    report = inspect(write(tmp_path, rows), max_length=500)
    assert report.lengths is not None
    assert report.lengths.estimated and report.lengths.tokenizer is None
    assert (report.lengths.p50, report.lengths.max, report.lengths.over_max_length) == (100, 1000, 0.25)
    assert finding(report, "OverMaxLength", None).sample_rows == 1


def test_a_tokenizer_that_cannot_be_had_falls_back_to_the_estimate(tmp_path: Path) -> None:
    report = inspect(write(tmp_path, [{"text": "hello"}]), tokenizer=str(tmp_path / "no-such-model"))
    assert report.lengths is not None and report.lengths.estimated
    assert report.lengths.note and "could not be loaded" in report.lengths.note
    assert any("lengths are estimated" in w for w in report.warnings)


@pytest.mark.slow
def test_lengths_with_a_real_tokenizer(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    vocab = {"[UNK]": 0, "hello": 1, "world": 2}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    folder = tmp_path / "tok"
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(folder)
    report = inspect(
        write(tmp_path, [{"text": "hello world hello"}, {"text": "hello"}]),
        tokenizer=str(folder),
        max_length=2,
    )
    assert report.lengths is not None
    assert not report.lengths.estimated and report.lengths.tokenizer == str(folder)
    assert (report.lengths.max, report.lengths.over_max_length) == (3, 0.5)
