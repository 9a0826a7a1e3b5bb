"""Read a GGUF file's header with llama.cpp's own gguf-py and print it as one JSON object.

Usage (by :func:`finetune_training.gguf.verify_gguf`)::

    python -m finetune_training.gguf_inspect LLAMA_CPP_SRC FILE.gguf

It runs as a subprocess so the sdist's gguf-py (which knows every tensor type the converter writes) is
imported there, never mixed with another `gguf` in the runtime's process. Only the header and tensor
infos are read: the tensor data stays memory-mapped and untouched.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def inspect(path: Path) -> dict[str, Any]:
    """The facts :class:`finetune_training.gguf.GGUFHeader` validates."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    arch = _field(reader, "general.architecture")
    tensors = [
        {"name": t.name, "type": t.tensor_type.name, "shape": [int(d) for d in t.shape]}
        for t in reader.tensors
    ]
    return {
        "architecture": arch,
        "name": _field(reader, "general.name"),
        "file_type": _field(reader, "general.file_type"),
        "tokenizer_model": _field(reader, "tokenizer.ggml.model"),
        "tokenizer_pre": _field(reader, "tokenizer.ggml.pre"),
        "has_chat_template": "tokenizer.chat_template" in reader.fields,
        "context_length": _field(reader, f"{arch}.context_length") if arch else None,
        "tensor_types": dict(Counter(t["type"] for t in tensors)),
        "tensors": tensors,
    }


def main(argv: list[str]) -> int:
    """Print the header of `argv[1]` as JSON on stdout."""
    if len(argv) != 2:
        print("usage: gguf_inspect LLAMA_CPP_SRC FILE.gguf", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(argv[0]).resolve() / "gguf-py"))
    print(json.dumps(inspect(Path(argv[1]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
