"""SFT throughput: our runtime's configuration vs plain TRL as a typical template configures it.

Both runs train the same randomly initialised model shape on the same synthetic rows (64–1024 tokens,
pre-tokenized, no downloads), in one process, one after the other, and report real (non-pad) tokens per
second, padding share, peak memory and MFU (6·N·tokens/s over the GPU's dense bf16 peak; N counts the
non-embedding weights plus the output head; attention FLOPs and recompute are left out).

- template: TRL defaults (bf16, gradient checkpointing on), batch 4 × accumulation 4, max length 1024,
  no packing;
- ours: the trainer `ftjob train` builds (`finetune_training.methods.build_trainer`) from a plan: packing
  that keeps documents apart, bf16, batch sized for the shape, flex attention (or flash-attn's varlen kernel
  when installed) and liger's kernels when installed (the trainer image's `gpu` extra);
- with `--sweep`, also ours with SDPA instead, and ours with `torch_compile` (the knobs to settle on a GPU).

Usage::

    python benchmarks/sft_throughput.py                 # Qwen3-0.6B shape, on the GPU
    python benchmarks/sft_throughput.py --shape 4b
    python benchmarks/sft_throughput.py --sweep --json out.json
    python benchmarks/sft_throughput.py --tiny          # CPU smoke run: tiny shape, short rows, 3 steps
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "training")]

# Dense bf16 peak (TFLOP/s) by GPU name fragment.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}

SHAPES: dict[str, dict[str, Any]] = {
    "0.6b": dict(
        hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
        num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True,
    ),
    "4b": dict(
        hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
        num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True,
    ),
    "tiny": dict(
        hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=64, vocab_size=512, tie_word_embeddings=False,
    ),
}  # fmt: skip

# Our runtime's batch per shape (what the planner resolves): about 16k tokens per optimizer step.
OURS = {
    "0.6b": {"perDeviceBatchSize": 16, "gradientAccumulationSteps": 1, "gradientCheckpointing": False},
    "4b": {"perDeviceBatchSize": 4, "gradientAccumulationSteps": 4, "gradientCheckpointing": True},
    "tiny": {"perDeviceBatchSize": 4, "gradientAccumulationSteps": 1, "gradientCheckpointing": False},
}


def build_model_dir(shape: str, out: Path) -> tuple[Path, int]:
    """A randomly initialised Qwen3-shaped model and a tokenizer in `out`; returns it and FLOP params."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from finetune_training.tiny import build_tiny_model

    tokenizer_dir = build_tiny_model(out / "tokenizer-source")
    config = Qwen3Config(**SHAPES[shape], max_position_embeddings=4096, pad_token_id=0, eos_token_id=2)
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = Qwen3ForCausalLM(config)
    embed = int(model.get_input_embeddings().weight.numel())  # type: ignore[operator]
    params = sum(p.numel() for p in model.parameters())
    # Non-embedding weights plus the output head's matmul (tied or not, it is computed once).
    flop_params = params - embed + (embed if config.tie_word_embeddings else 0)
    path = out / f"model-{shape}"
    model.save_pretrained(path)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(path)
    del model
    return path, flop_params


def synthetic_rows(count: int, low: int, high: int, vocab: int, seed: int = 0) -> Any:
    """Pre-tokenized rows of uniformly random length in [low, high] (token 0 is the pad)."""
    from datasets import Dataset

    rng = random.Random(seed)
    rows = [[rng.randrange(3, vocab) for _ in range(rng.randint(low, high))] for _ in range(count)]
    return Dataset.from_dict({"input_ids": rows})


class Meter:
    """Times optimizer steps after a warm-up and reads the Trainer's non-pad token count."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start: tuple[float, int] | None = None
        self.end: tuple[float, int] | None = None
        self.steps = 0

    def callback(self) -> Any:
        """A TrainerCallback feeding this meter."""
        import torch
        from transformers import TrainerCallback

        meter = self

        class _Cb(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                now = (time.perf_counter(), int(state.num_input_tokens_seen))
                if state.global_step == meter.warmup:
                    meter.start = now
                elif state.global_step > meter.warmup:
                    meter.end, meter.steps = now, state.global_step - meter.warmup

        return _Cb()

    def tokens_per_second(self) -> float:
        """Real tokens per second over the measured steps."""
        assert self.start and self.end, "too few steps to measure"
        return (self.end[1] - self.start[1]) / (self.end[0] - self.start[0])


def template_trainer(model_dir: Path, data: Any, out: Path, steps: int, max_length: int, cb: Any) -> Any:
    """Plain TRL as a typical template configures it."""
    import torch
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    cpu = not torch.cuda.is_available()
    device_args: dict[str, Any] = {"use_cpu": True, "bf16": False} if cpu else {}
    args = SFTConfig(
        output_dir=str(out),
        per_device_train_batch_size=4,
        gradient_accumulation_steps=4,
        max_length=max_length,
        packing=False,
        max_steps=steps,
        report_to="none",
        save_strategy="no",
        logging_steps=10_000,
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        **device_args,
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return SFTTrainer(
        model=str(model_dir), args=args, train_dataset=data, processing_class=tokenizer, callbacks=[cb]
    )


def our_trainer(
    model_dir: Path,
    data: Any,
    out: Path,
    shape: str,
    steps: int,
    max_length: int,
    cb: Any,
    extra: dict[str, Any] | None = None,
) -> Any:
    """The trainer our runtime builds from a plan; `extra` are TRL overrides (the spec's `extraArgs`), except
    `attention`, which replaces the runtime's choice of attention kernel (None: transformers' default, SDPA)."""
    from unittest import mock

    from finetune_training import methods
    from finetune_training.plan import TrainingPlan

    extra = dict(extra or {})
    forcing: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if "attention" in extra:
        forced = extra.pop("attention")
        forcing = mock.patch.object(methods, "attention_implementation", lambda plan: forced)

    plan = TrainingPlan.model_validate(
        {
            "job": {"name": "bench"},
            "model": str(model_dir),
            "dataset": {"name": "synthetic"},
            "method": "SFT",
            "peft": "None",
            "hyperparameters": {
                "maxSteps": steps,
                "maxLength": max_length,
                "packing": True,
                "learningRate": 2e-5,
                "loggingSteps": 10_000,
                **OURS[shape],
                "extraArgs": {"report_to": "none", "save_strategy": "no", **extra},
            },
            "output": {"localDir": str(out)},
            "tracking": {"project": "bench", "runName": "bench"},
        }
    )
    with forcing:
        return methods.build_trainer(plan, data, out, callbacks=[cb])


def measure(name: str, make: Any, warmup: int) -> dict[str, Any]:
    """Train with one configuration; tokens/s, pad share and peak memory."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    meter = Meter(warmup)
    trainer = make(meter.callback())
    seen_all = 0
    collate = trainer.data_collator

    def counting(examples: list[dict[str, Any]]) -> Any:
        nonlocal seen_all
        batch = collate(examples)
        seen_all += int(batch["input_ids"].numel())
        return batch

    trainer.data_collator = counting
    attention = getattr(trainer.model.config, "_attn_implementation", None)
    liger = bool(getattr(trainer.args, "use_liger_kernel", False))
    trainer.train()
    tps = meter.tokens_per_second()
    real = trainer.state.num_input_tokens_seen
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    del trainer
    return {
        "setup": name,
        "attention": attention,
        "liger": liger,
        "tokens_per_second": tps,
        "pad_percent": 100.0 * (1 - real / seen_all) if seen_all else 0.0,
        "peak_gib": peak,
        "measured_steps": meter.steps,
    }


def main(argv: list[str] | None = None) -> int:
    """Run both configurations and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["0.6b", "4b"], default="0.6b")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run: tiny shape, short rows")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per setup")
    parser.add_argument("--warmup", type=int, default=None, help="steps left out of the timing")
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the GPU's bf16 peak")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--sweep", action="store_true", help="also run ours with SDPA and ours with torch.compile"
    )
    args = parser.parse_args(argv)

    import torch
    import transformers
    import trl

    shape = "tiny" if args.tiny else args.shape
    low, high, max_length = (16, 256, 256) if args.tiny else (64, 1024, 1024)
    steps = args.steps or (4 if args.tiny else 30)
    warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 5)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if gpu and k in gpu), None)

    with tempfile.TemporaryDirectory(prefix="sft-bench-") as tmp:
        work = Path(tmp)
        model_dir, flop_params = build_model_dir(shape, work)
        data = synthetic_rows(
            min(args.rows, 256) if args.tiny else args.rows, low, high, SHAPES[shape]["vocab_size"]
        )
        variants: list[tuple[str, dict[str, Any]]] = [("ours (ftjob train: packing, documents apart)", {})]
        if args.sweep:
            variants += [
                ("ours with SDPA", {"attention": None}),
                ("ours with torch_compile", {"torch_compile": True}),
            ]
        results = [
            measure(
                "template (TRL defaults, bs4×ga4, max 1024, no packing)",
                lambda cb: template_trainer(model_dir, data, work / "template", steps, max_length, cb),
                warmup,
            )
        ]
        for i, (name, extra) in enumerate(variants):
            results.append(
                measure(
                    name,
                    lambda cb, extra=extra, i=i: our_trainer(
                        model_dir, data, work / f"ours-{i}", shape, steps, max_length, cb, extra
                    ),
                    warmup,
                )
            )
    for r in results:
        r["mfu_percent"] = 100 * 6 * flop_params * r["tokens_per_second"] / (peak * 1e12) if peak else None
    speedup = results[1]["tokens_per_second"] / results[0]["tokens_per_second"]
    report = {
        "date": datetime.date.today().isoformat(),
        "device": gpu or f"CPU ({platform.processor() or platform.machine()})",
        "shape": shape,
        "flop_params": flop_params,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
        "results": results,
        "speedup": speedup,
    }
    print(f"SFT throughput, {shape} shape, {report['device']}, {report['date']}, {report['versions']}")
    print(
        f"{'setup':<58} {'attention':<15} {'liger':<5} {'real tok/s':>11} {'pad %':>6} {'peak GiB':>9} "
        f"{'MFU %':>6} {'vs template':>11}"
    )
    for r in results:
        peak_gib = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "-"
        mfu = f"{r['mfu_percent']:.1f}" if r["mfu_percent"] is not None else "-"
        tps, pad = r["tokens_per_second"], r["pad_percent"]
        ratio = tps / results[0]["tokens_per_second"]
        print(
            f"{r['setup']:<58} {r['attention'] or '-':<15} {'yes' if r['liger'] else 'no':<5} {tps:>11,.0f} "
            f"{pad:>6.1f} {peak_gib:>9} {mfu:>6} {ratio:>10.1f}x"
        )
    print(f"speedup: {speedup:.1f}x real tokens/s (ours vs template)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
