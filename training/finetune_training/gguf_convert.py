"""Run llama.cpp's `convert_hf_to_gguf.py` with a pre-tokenizer fallback, as a subprocess entry point.

Usage (by :func:`finetune_training.gguf.build_gguf`, its functions run only in that subprocess)::

    python -m finetune_training.gguf_convert LLAMA_CPP_SRC FALLBACK_PRE -- <convert_hf_to_gguf.py args>

The converter names a BPE pre-tokenizer by hashing how the tokenizer splits a probe text; a locally
trained tokenizer matches no known hash and the converter refuses it. This wrapper patches
`TextModel.get_vocab_base_pre` so that a recognised tokenizer keeps its name and an unrecognised one
gets `FALLBACK_PRE` (``-`` for none), without editing the vendored files. It also checks the
architecture first, so an unsupported model exits with a distinct code instead of a log line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

EXIT_UNSUPPORTED_ARCH = 3
EXIT_UNKNOWN_PRE_TOKENIZER = 4
MARKER = "FTJOB-GGUF:"


def _patch_pre_tokenizer(fallback: str | None) -> None:
    """Keep the converter's answer when it knows the tokenizer; otherwise use `fallback`."""
    from conversion.base import TextModel

    original = TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self: Any, tokenizer: Any) -> str:
        try:
            return str(original(self, tokenizer))
        except NotImplementedError:
            if fallback is None:
                print(f"{MARKER} unknown-pre-tokenizer", file=sys.stderr, flush=True)
                raise SystemExit(EXIT_UNKNOWN_PRE_TOKENIZER) from None
            print(f"{MARKER} pre-tokenizer not recognised, using {fallback!r}", file=sys.stderr, flush=True)
            return fallback

    TextModel.get_vocab_base_pre = get_vocab_base_pre


def _check_architecture(model_dir: Path) -> None:
    """Exit with `EXIT_UNSUPPORTED_ARCH` when the converter has no class for the model."""
    from conversion import (
        ModelBase,
        ModelType,
        get_model_architecture,
        get_model_class,
    )

    hparams = ModelBase.load_hparams(model_dir, False)
    arch = get_model_architecture(hparams, ModelType.TEXT)
    try:
        get_model_class(arch, mmproj=False)
    except NotImplementedError:
        print(f"{MARKER} unsupported-architecture {arch}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_UNSUPPORTED_ARCH) from None


def main(argv: list[str]) -> int:
    """Patch, then hand `argv` after ``--`` to the converter's own `main()`."""
    if len(argv) < 3 or argv[2] != "--":
        print("usage: gguf_convert LLAMA_CPP_SRC FALLBACK_PRE -- MODEL_DIR [converter args]", file=sys.stderr)
        return 2
    src = Path(argv[0]).resolve()
    fallback = None if argv[1] == "-" else argv[1]
    converter_args = argv[3:]
    # The converter finds its `conversion` package and vocab files through sys.path[0].
    sys.path[:0] = [str(src), str(src / "gguf-py")]
    import convert_hf_to_gguf

    _check_architecture(Path(converter_args[0]))
    _patch_pre_tokenizer(fallback)
    sys.argv = [str(src / "convert_hf_to_gguf.py"), *converter_args]
    convert_hf_to_gguf.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
