"""SFT with real TRL on CPU: a few steps on the project's example datasets, with and without LoRA."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_training.events import EventKind
from finetune_training.plan import TrainingPlan
from tests.integration.training_support import run_in_process

pytestmark = pytest.mark.slow


def test_sft_lora_on_alpaca_reports_progress_and_saves_an_adapter(
    make_plan: Callable[..., TrainingPlan],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    trackio_dir: Path,
) -> None:
    # maxLength 512: several ~90-token rows share one packed example.
    plan = make_plan("SFT", "alpaca.json", "Alpaca", hyperparameters={"maxSteps": 3, "maxLength": 512})
    code, events = run_in_process(plan, tmp_path, capsys)
    assert code == 0, events
    kinds = [e.ftjob for e in events]
    assert kinds[0] == EventKind.START and kinds[-1] == EventKind.DONE
    assert events[0].total_steps == 3 and events[0].resumed_from_step is None
    assert events[0].trackio_url and events[0].trackio_url.endswith("ftjob-tests.db")
    rows = events[0].rows  # how the 60 rows became steps: packed into fewer, longer examples
    assert rows is not None and rows.dataset_rows == 60 and rows.packed
    assert 0 < rows.examples < 60 and rows.examples_per_step > 0
    progress = [e for e in events if e.ftjob == EventKind.PROGRESS]
    assert [e.step for e in progress] == [1, 2, 3]
    for e in progress:
        assert e.total_steps == 3 and e.loss is not None and math.isfinite(e.loss)
        assert e.learning_rate is not None and e.epoch is not None and e.eta_seconds is not None
        assert e.tokens_per_second is not None and e.tokens_per_second > 0
    final = Path(plan.output.local_dir) / "final"
    assert (final / "adapter_config.json").is_file() and not (final / "model.safetensors").exists()
    card = (final / "README.md").read_text()
    assert "library_name: peft" in card and "- sft" in card and "train_loss" in card

    db = trackio_dir / "ftjob-tests.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        query = "select metrics from metrics where run_name = ?"
        rows = conn.execute(query, (plan.tracking.run_name,)).fetchall()
    assert any("train/loss" in json.loads(r[0]) for r in rows)


def test_sft_full_fine_tuning_on_conversations(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = make_plan("SFT", "content_parts.jsonl", "ContentParts", peft="None")
    code, events = run_in_process(plan, tmp_path, capsys)
    assert code == 0, events
    assert events[-1].ftjob == EventKind.DONE and events[-1].step == 2
    final = Path(plan.output.local_dir) / "final"
    assert (final / "model.safetensors").is_file() and (final / "tokenizer.json").is_file()
    assert "library_name: transformers" in (final / "README.md").read_text()


def test_sft_config_uses_assistant_only_loss_and_document_aware_packing(
    make_plan: Callable[..., TrainingPlan], tiny_model: Path, tmp_path: Path
) -> None:
    from finetune_training.methods import load_tokenizer, sft_args

    plan = make_plan("SFT", "content_parts.jsonl", "ContentParts", hyperparameters={"extraArgs": {"seed": 7}})
    args = sft_args(plan, tmp_path, ["messages"], load_tokenizer(plan))
    assert args["assistant_only_loss"] is True
    assert args["packing"] is True and args["packing_strategy"] == "bfd"
    assert args["use_cpu"] is True and args["bf16"] is False and args["seed"] == 7
    assert args["report_to"] == ["trackio"] and args["run_name"] == plan.tracking.run_name
    completion_args = sft_args(plan, tmp_path, ["prompt", "completion"], load_tokenizer(plan))
    assert "assistant_only_loss" not in completion_args


@pytest.mark.parametrize("attention", ["sdpa", "flex_attention"])
def test_packed_rows_keep_documents_apart(tiny_model: Path, attention: str) -> None:
    """A document packed after another gets the same logits as alone: no attention across the boundary.

    SDPA is what CPU runs train with; flex attention is what packed SFT uses on a GPU without flash-attn
    (its forward runs on CPU too, and the block mask it builds from the position ids is the same).
    """
    import torch
    from transformers import AutoModelForCausalLM

    from finetune_training.packing import RowwisePackedCollator

    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=attention).eval()
    a, b = list(range(5, 17)), list(range(40, 49))
    collator = RowwisePackedCollator(pad_token_id=0)
    batch = collator([{"input_ids": a + b, "seq_lengths": [len(a), len(b)]}, {"input_ids": b}])
    assert batch["position_ids"][0].tolist() == list(range(len(a))) + list(range(len(b)))
    assert batch["position_ids"][1].tolist()[: len(b)] == list(range(len(b)))
    assert batch["labels"][0, len(a)].item() == -100  # no loss across the document boundary
    assert (batch["labels"][1, len(b) :] == -100).all()  # padding
    with torch.no_grad():
        # As in training (TRL passes use_cache=False): without a cache transformers reads the boundaries.
        packed = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits
        alone = model(input_ids=torch.tensor([b]), use_cache=False).logits
    assert torch.allclose(packed[0, len(a) :], alone[0], atol=1e-4)
    assert torch.allclose(packed[1, : len(b)], alone[0], atol=1e-4)


def test_attention_kernel_per_device_and_method(
    make_plan: Callable[..., TrainingPlan], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Flex attention for packed SFT on a GPU (no flash-attn here); SDPA on CPU and for DPO/GRPO."""
    from finetune_training import methods

    packed = make_plan("SFT", "alpaca.json", "Alpaca", hyperparameters={"packing": True})
    unpacked = make_plan("SFT", "alpaca.json", "Alpaca", hyperparameters={"packing": False})
    dpo = make_plan("DPO", "sharegpt_preference.json", "ShareGPTPreference")
    assert methods.attention_implementation(packed) is None  # CPU: transformers' default (SDPA)
    monkeypatch.setattr(methods, "cuda_available", lambda: True)
    assert methods.supports_flex_attention(packed)
    assert methods.attention_implementation(packed) == "flex_attention"
    assert methods.model_init_kwargs(packed, bf16=True)["attn_implementation"] == "flex_attention"
    assert methods.attention_implementation(unpacked) is None
    assert methods.attention_implementation(dpo) is None
    # An architecture without flex attention in transformers (GPT-2) keeps SDPA; so does an unreadable model.
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=64, n_head=2).save_pretrained(tmp_path / "gpt2")
    for model in (tmp_path / "gpt2", tmp_path / "no-such-model"):
        other = packed.model_copy(update={"model": str(model)})
        assert not methods.supports_flex_attention(other)
        assert methods.attention_implementation(other) is None
