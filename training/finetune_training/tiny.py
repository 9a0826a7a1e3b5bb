"""A tiny Llama-shaped model and byte-level BPE tokenizer, built locally without downloads.

Tests, `make demo` and the CPU benchmark smoke run train on it. Hidden size 256 keeps every weight row a
multiple of 256, so GGUF K-quants (Q4_K_M) apply instead of silently falling back to other types.
A Llama config is used because transformers 5 rewrites a Qwen2 tokenizer's pre-tokenizer on load.

Usage: ``python -m finetune_training.tiny OUT_DIR``.
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
from pathlib import Path

PAD = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

# ChatML with `{% generation %}` markers around assistant content so TRL's assistant_only_loss works.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}{% generation %}{{- message['content'] + '<|im_end|>' }}"
    "{% endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_SUBJECTS = ["the model", "a student", "my friend", "the teacher", "our team", "the robot", "she", "he"]
_VERBS = ["answers", "writes", "reads", "computes", "explains", "counts", "solves", "describes"]
_OBJECTS = ["the question", "a story", "the numbers", "a poem", "the problem", "an email", "the list"]
_EXTRAS = ["quickly", "carefully", "today", "with care", "in detail", "step by step", "again"]
_MARKED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def _sentences(count: int, seed: int) -> list[str]:
    """Generated training text: words, digits, punctuation and chat-like phrasing."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        a, b = rng.randint(0, 999), rng.randint(0, 99)
        out.append(
            f"{rng.choice(_SUBJECTS).capitalize()} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
            f"{rng.choice(_EXTRAS)}. What is {a} plus {b}? The answer is {a + b}. #### {a + b}"
        )
        if i % 5 == 0:
            out.append(f"<think>{a} + {b} = {a + b}</think><answer>{a + b}</answer> Thanks, bye!")
    return out


def _train_tokenizer(seed: int) -> object:
    """A byte-level BPE (nothing is out of vocabulary) wrapped in PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=[PAD, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_sentences(600, seed), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=IM_END,
        unk_token=None,
        bos_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=2048,
    )


def is_built(out_dir: Path) -> bool:
    """True when `out_dir` holds a complete tiny model."""
    return all((out_dir / name).is_file() for name in _MARKED_FILES)


def build_tiny_model(out_dir: Path, hidden: int = 256, arch: str = "llama", seed: int = 0) -> Path:
    """Build (once) a tiny causal LM and its tokenizer in `out_dir`.

    Parameters
    ----------
    out_dir
        Folder to write `config.json`, `model.safetensors`, the tokenizer and chat template into.
        When it already holds a complete model, nothing is rebuilt.
    hidden
        Hidden size; keep it a multiple of 256 for GGUF K-quants.
    arch
        Only ``"llama"`` is supported (see the module docstring for why not Qwen2).
    seed
        Seed for the generated text, tokenizer and weights: the same seed gives the same files.

    Returns
    -------
    Path
        `out_dir`.
    """
    out_dir = Path(out_dir)
    if is_built(out_dir):
        return out_dir
    if arch != "llama":
        raise ValueError(f"`arch` must be 'llama', not {arch!r} (Qwen2 tokenizers are rewritten on load)")
    if hidden % 4:
        raise ValueError(f"`hidden` must be a multiple of the 4 attention heads, not {hidden}")

    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = _train_tokenizer(seed)
    pad_id = tokenizer.convert_tokens_to_ids(PAD)  # type: ignore[attr-defined]
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)  # type: ignore[attr-defined]
    config = LlamaConfig(
        vocab_size=len(tokenizer),  # type: ignore[arg-type]
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id)

    # Build next to the target and rename, so concurrent builders never see a half-written folder.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)  # type: ignore[attr-defined]
        if is_built(out_dir):
            return out_dir
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m finetune_training.tiny OUT_DIR [HIDDEN]``."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help"}:
        print("usage: python -m finetune_training.tiny OUT_DIR [HIDDEN]")
        return 0 if args else 2
    hidden = int(args[1]) if len(args) > 1 else 256
    print(build_tiny_model(Path(args[0]), hidden=hidden))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
