"""Which tokens carry the loss, read from the real trainer's first batch (TRL tokenizes, packs and builds
`labels`; our row-wise collator keeps them): only completion and assistant tokens, never the prompt, the
user's turns or the template around them. A TRL upgrade that changes it fails here."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_training.plan import TrainingPlan
from tests.example_data import DATASETS

pytestmark = pytest.mark.slow


def learned_and_ignored(plan: TrainingPlan, tmp_path: Path) -> tuple[list[str], list[str]]:
    """Per row of the first batch: the text whose tokens carry loss, and the text whose tokens do not."""
    from finetune_training.data import prepare_dataset
    from finetune_training.methods import build_trainer, load_tokenizer

    tokenizer = load_tokenizer(plan)
    dataset = prepare_dataset(plan.dataset, plan.method, plan.rewards)
    trainer = build_trainer(plan, dataset, tmp_path / "ckpt", callbacks=[], tokenizer=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    learned, ignored = [], []
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        real = ids != tokenizer.pad_token_id
        learned.append(tokenizer.decode(ids[(labels != -100) & real]))
        ignored.append(tokenizer.decode(ids[(labels == -100) & real]))
    return learned, ignored


@pytest.mark.parametrize("packing", [True, False])
def test_prompt_completion_rows_learn_only_the_completion(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, packing: bool
) -> None:
    plan = make_plan("SFT", "prompt_completion.jsonl", hyperparameters={"packing": packing, "maxLength": 512})
    rows = [json.loads(line) for line in (DATASETS / "prompt_completion.jsonl").read_text().splitlines()]
    learned, ignored = learned_and_ignored(plan, tmp_path)
    text = " ".join(learned)
    assert any(row["completion"][:40] in text for row in rows), "completions carry the loss"
    # A slice from inside each prompt: with packing the first token of every document carries no loss.
    for row in rows:
        assert row["prompt"][8:40] not in text, f"prompt tokens carry loss: {row['prompt'][:40]!r}"
    assert any(row["prompt"][8:40] in " ".join(ignored) for row in rows)


def test_conversations_learn_only_the_assistant_turns(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path
) -> None:
    plan = make_plan("SFT", "messages.jsonl", hyperparameters={"maxLength": 512})
    rows = [json.loads(line) for line in (DATASETS / "messages.jsonl").read_text().splitlines()]
    learned, _ = learned_and_ignored(plan, tmp_path)
    text = " ".join(learned)
    assistant = [t["content"][8:40] for r in rows for t in r["messages"] if t["role"] == "assistant"]
    others = [t["content"][8:40] for r in rows for t in r["messages"] if t["role"] != "assistant"]
    assert any(a in text for a in assistant), "assistant turns carry the loss"
    assert not [o for o in others if o in text], "user or system turns carry loss"
    assert (
        "<|im_start|>user" not in text and "<|im_start|>assistant" not in text
    )  # the template's scaffolding
