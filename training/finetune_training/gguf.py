"""GGUF files for llama.cpp users: convert a merged HF model to F16, quantise, and verify each file.

The tools come from the llama-cpp-python sdist (`training/gguf-tools.sh`, `make gguf-tools`): its
`convert_hf_to_gguf.py` with the matching `gguf-py`, and `llama-quantize` / `llama-simple` built from the
same llama.cpp commit. `FTJOB_LLAMA_CPP` names that folder (`/opt/llama.cpp` in the trainer image).
PyPI's `gguf` is not used: it lags the converter and has no K-quants. Nothing here imports torch; the
converter runs as a subprocess (:mod:`finetune_training.gguf_convert`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from finetune_training.errors import TrainingError
from finetune_training.gguf_convert import EXIT_UNKNOWN_PRE_TOKENIZER, EXIT_UNSUPPORTED_ARCH
from finetune_training.plan import GGUFQuant

ENV_TOOLS = "FTJOB_LLAMA_CPP"
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent
_DEFAULT_ROOT = _PACKAGE_PARENT.parent / ".cache" / "llama.cpp"
_UNQUANTISED = frozenset({"F32", "F16", "BF16"})
_PROMPT = "Hello"


class GGUFError(TrainingError):
    """A GGUF step failed; `reason` is CamelCase (`GGUFToolsMissing`, `GGUFArchitectureUnsupported`, ...)."""


class GGUFTools(BaseModel):
    """Where the llama.cpp tools are."""

    model_config = ConfigDict(frozen=True)

    root: Path
    """The tools folder (`FTJOB_LLAMA_CPP`)."""
    src: Path
    """The llama.cpp source: `convert_hf_to_gguf.py`, `conversion/`, `gguf-py/`."""
    quantize: Path
    """`llama-quantize`."""
    simple: Path
    """`llama-simple`: loads a GGUF and generates tokens (the load check)."""
    version: str | None = None
    """What they were built from (`llama-cpp-python==0.3.36`), from the folder's VERSION file."""


class GGUFTensor(BaseModel):
    """One tensor info from a GGUF header."""

    name: str
    type: str
    """ggml type name (`F32`, `Q4_K`, ...)."""
    shape: list[int]


class GGUFHeader(BaseModel):
    """What :mod:`finetune_training.gguf_inspect` prints for a file."""

    architecture: str | None
    name: str | None = None
    file_type: int | None
    """`general.file_type` (llama.cpp's `LlamaFileType`, 15 is Q4_K_M)."""
    tokenizer_model: str | None = None
    tokenizer_pre: str | None = None
    has_chat_template: bool = False
    context_length: int | None = None
    tensor_types: dict[str, int]
    tensors: list[GGUFTensor]


class GGUFCheck(BaseModel):
    """A verified GGUF file."""

    path: Path
    quant: GGUFQuant
    size_bytes: int
    architecture: str
    file_type: int
    tensor_types: dict[str, int]
    """How many tensors have each ggml type."""
    fallback_tensors: list[str] = Field(default_factory=list)
    """Tensors llama.cpp quantised to another type because their rows do not fit the requested one."""
    tokenizer_pre: str | None = None
    has_chat_template: bool
    prompt: str
    generated: str
    """What llama.cpp generated after `prompt` (one token; empty when it chose end of generation)."""


class _QuantRule(BaseModel):
    file_type: int
    allowed: frozenset[str]
    """Quantised types llama.cpp's mix for this file type uses (others are fallbacks)."""


# LlamaFileType values and the type mixes of llama.cpp's `llama_tensor_get_type` (src/llama-quant.cpp).
_RULES: dict[GGUFQuant, _QuantRule] = {
    GGUFQuant.F16: _QuantRule(file_type=1, allowed=frozenset()),
    GGUFQuant.Q8_0: _QuantRule(file_type=7, allowed=frozenset({"Q8_0"})),
    GGUFQuant.Q6_K: _QuantRule(file_type=18, allowed=frozenset({"Q6_K"})),
    GGUFQuant.Q5_K_M: _QuantRule(file_type=17, allowed=frozenset({"Q5_K", "Q6_K"})),
    GGUFQuant.Q5_0: _QuantRule(file_type=8, allowed=frozenset({"Q5_0", "Q5_1", "Q6_K", "Q8_0"})),
    GGUFQuant.Q4_K_M: _QuantRule(file_type=15, allowed=frozenset({"Q4_K", "Q5_K", "Q6_K"})),
    GGUFQuant.Q4_0: _QuantRule(file_type=2, allowed=frozenset({"Q4_0", "Q4_1", "Q6_K", "Q8_0"})),
    GGUFQuant.Q3_K_M: _QuantRule(file_type=12, allowed=frozenset({"Q3_K", "Q4_K", "Q5_K", "Q6_K"})),
    GGUFQuant.Q2_K: _QuantRule(file_type=10, allowed=frozenset({"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"})),
}

# Which pre-tokenizer name a locally trained tokenizer's split rules mean to llama.cpp.
_LLAMA3_REGEX_DIGITS = r"\p{N}{1,3}"
_QWEN2_REGEX_DIGITS = r"|\p{N}|"


def _log(message: str) -> None:
    """Progress for people reading the logs; stdout is kept for the runtime's JSON events."""
    print(f"[gguf] {message}", file=sys.stderr, flush=True)


def gguf_filename(name: str, quant: GGUFQuant) -> str:
    """The file name llama.cpp users expect: ``<name>-<QUANT>.gguf`` (``tiny-chat-Q4_K_M.gguf``)."""
    return f"{name}-{quant.value}.gguf"


def find_tools(root: Path | None = None) -> GGUFTools:
    """Locate the llama.cpp tools.

    Parameters
    ----------
    root
        The tools folder; default `$FTJOB_LLAMA_CPP`, else `<repo>/.cache/llama.cpp`.

    Returns
    -------
    GGUFTools
        Paths of the converter source and the binaries.

    Raises
    ------
    GGUFError
        `GGUFToolsMissing` when a tool is absent; the message says how to build them.
    """
    env_root = os.environ.get(ENV_TOOLS)
    base = Path(root) if root is not None else Path(env_root) if env_root else _DEFAULT_ROOT
    tools = GGUFTools(
        root=base,
        src=base / "src",
        quantize=base / "bin" / "llama-quantize",
        simple=base / "bin" / "llama-simple",
    )
    needed = [
        tools.src / "convert_hf_to_gguf.py",
        tools.src / "gguf-py" / "gguf",
        tools.quantize,
        tools.simple,
    ]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise GGUFError(
            "GGUFToolsMissing",
            f"the llama.cpp GGUF tools are not built in `{base}` (missing: {', '.join(missing)}); "
            f"run `make gguf-tools` (or `training/gguf-tools.sh DIR`) and set `{ENV_TOOLS}` to that folder",
        )
    stamp = base / "VERSION"
    version = stamp.read_text(encoding="utf-8").strip() if stamp.is_file() else None
    return tools.model_copy(update={"version": version})


def infer_pre_tokenizer(model_dir: Path) -> str | None:
    """The llama.cpp pre-tokenizer name matching a tokenizer.json's split rules, if one clearly does.

    Only consulted when the converter does not recognise the tokenizer (a locally trained one): a
    released model's tokenizer keeps the name the converter derives from its hash.

    Parameters
    ----------
    model_dir
        A Hugging Face model folder.

    Returns
    -------
    str or None
        `gpt-2` for plain byte-level BPE, `llama-bpe` for Llama 3's split regex, `qwen2` for Qwen2's,
        None when there is no tokenizer.json or the rules match none of these.
    """
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        return None
    try:
        pre = json.loads(path.read_text(encoding="utf-8")).get("pre_tokenizer") or {}
    except (OSError, ValueError):
        return None
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    regexes = [s.get("pattern", {}).get("Regex", "") for s in steps if s.get("type") == "Split"]
    byte_level = [s for s in steps if s.get("type") == "ByteLevel"]
    if not byte_level:
        return None
    if not regexes:
        return "gpt-2" if byte_level[0].get("use_regex", True) else None
    if _LLAMA3_REGEX_DIGITS in regexes[0]:
        return "llama-bpe"
    if _QWEN2_REGEX_DIGITS in regexes[0]:
        return "qwen2"
    return None


def _subprocess_env(tools: GGUFTools) -> dict[str, str]:
    """The sdist's gguf-py first on the path (not PyPI's `gguf`), and no network."""
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)
    paths = [str(tools.src / "gguf-py"), str(_PACKAGE_PARENT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _run(cmd: Sequence[str], env: dict[str, str], label: str, timeout: float) -> tuple[int, str]:
    """Run `cmd`, relaying a line of its output every few seconds; return its code and last lines."""
    tail: deque[str] = deque(maxlen=40)
    last = 0.0
    with subprocess.Popen(
        list(cmd), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        # A timer, not a check per line: a hung tool may print nothing at all.
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip()
                if not line:
                    continue
                tail.append(line)
                if time.monotonic() - last > 5:
                    _log(f"  {label}: {line[:160]}")
                    last = time.monotonic()
            code = proc.wait()
        finally:
            timer.cancel()
    if code < 0:
        tail.append(f"stopped by signal {-code} (time limit {timeout:.0f}s)")
    return code, "\n".join(tail)


def _convert_f16(
    model_dir: Path, out: Path, name: str, tools: GGUFTools, pre_tokenizer: str | None, timeout: float
) -> None:
    """convert_hf_to_gguf.py (through the pre-tokenizer wrapper) to an F16 GGUF at `out`."""
    fallback = pre_tokenizer or infer_pre_tokenizer(model_dir)
    tmp = out.with_name(out.name + ".partial")
    cmd = [
        sys.executable,
        "-m",
        "finetune_training.gguf_convert",
        str(tools.src),
        fallback or "-",
        "--",
        str(model_dir),
        "--outfile",
        str(tmp),
        "--outtype",
        "f16",
        "--model-name",
        name,
    ]
    _log(f"converting {model_dir} to F16 (fallback pre-tokenizer: {fallback or 'none'})")
    start = time.monotonic()
    code, tail = _run(cmd, _subprocess_env(tools), "convert", timeout)
    if code == EXIT_UNSUPPORTED_ARCH:
        arch = (
            tail.rsplit("unsupported-architecture", 1)[-1].split()[0]
            if "unsupported-architecture" in tail
            else "?"
        )
        raise GGUFError(
            "GGUFArchitectureUnsupported",
            f"llama.cpp's converter cannot convert architecture `{arch}` of `{model_dir}`; "
            "remove `output.gguf` from the spec or use a model llama.cpp supports",
        )
    if code == EXIT_UNKNOWN_PRE_TOKENIZER:
        raise GGUFError(
            "GGUFTokenizerUnsupported",
            f"llama.cpp does not recognise the tokenizer of `{model_dir}` and its split rules match no known "
            "pre-tokenizer; remove `output.gguf` from the spec or use a tokenizer of a released model",
        )
    if code != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise GGUFError("GGUFConversionFailed", f"convert_hf_to_gguf.py failed (exit {code}):\n{tail}")
    tmp.replace(out)
    _log(f"wrote {out.name} ({_mib(out)}) in {time.monotonic() - start:.1f}s")


def _quantize(source: Path, out: Path, quant: GGUFQuant, tools: GGUFTools, timeout: float) -> None:
    """llama-quantize `source` (F16) to `quant` at `out`."""
    tmp = out.with_name(out.name + ".partial")
    threads = str(max(1, os.cpu_count() or 1))
    _log(f"quantising to {quant.value}")
    start = time.monotonic()
    code, tail = _run(
        [str(tools.quantize), str(source), str(tmp), quant.value, threads],
        dict(os.environ),
        "quantize",
        timeout,
    )
    if code != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise GGUFError(
            "GGUFQuantizeFailed", f"llama-quantize to {quant.value} failed (exit {code}):\n{tail}"
        )
    tmp.replace(out)
    _log(f"wrote {out.name} ({_mib(out)}) in {time.monotonic() - start:.1f}s")


def _mib(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.2f} MiB"


def build_gguf(
    model_dir: Path,
    quants: list[GGUFQuant],
    out_dir: Path,
    name: str,
    *,
    pre_tokenizer: str | None = None,
    tools: GGUFTools | None = None,
    timeout: float = 6 * 3600,
) -> list[Path]:
    """Convert a (merged) Hugging Face model folder to GGUF files, one per requested type.

    Parameters
    ----------
    model_dir
        A full model folder (`config.json`, safetensors, tokenizer); merge LoRA adapters first.
    quants
        File types to produce, in order. F16 is always made first (the quantiser's input) and kept
        only when asked for.
    out_dir
        Where the files go, named ``<name>-<QUANT>.gguf``.
    name
        Base of the file names and `general.name` in the files.
    pre_tokenizer
        llama.cpp pre-tokenizer name for a tokenizer the converter does not recognise; default
        :func:`infer_pre_tokenizer`. A recognised tokenizer always keeps the converter's own name.
    tools
        The llama.cpp tools; default :func:`find_tools`.
    timeout
        Seconds allowed to each conversion or quantisation.

    Returns
    -------
    list of Path
        The files, in the order of `quants` (duplicates removed).

    Raises
    ------
    GGUFError
        Tools missing, model folder invalid, architecture or tokenizer unsupported, a step failed.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise GGUFError(
            "GGUFModelInvalid", f"`{model_dir}` has no config.json: GGUF needs a full (merged) model"
        )
    if not name or "/" in name or name.startswith("."):
        raise GGUFError("GGUFModelInvalid", f"GGUF file name base {name!r} must be a plain, non-empty name")
    wanted = list(dict.fromkeys(GGUFQuant(q) for q in quants))
    if not wanted:
        return []
    tools = tools or find_tools()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    f16 = out_dir / gguf_filename(name, GGUFQuant.F16)
    keep_f16 = GGUFQuant.F16 in wanted
    source = f16 if keep_f16 else out_dir / f".{name}-F16.intermediate.gguf"
    try:
        _convert_f16(model_dir, source, name, tools, pre_tokenizer, timeout)
        for quant in wanted:
            if quant is not GGUFQuant.F16:
                _quantize(source, out_dir / gguf_filename(name, quant), quant, tools, timeout)
    finally:
        if not keep_f16:
            source.unlink(missing_ok=True)
    return [out_dir / gguf_filename(name, q) for q in wanted]


def read_header(path: Path, tools: GGUFTools | None = None) -> GGUFHeader:
    """Read a GGUF header with the sdist's gguf-py (in a subprocess).

    Parameters
    ----------
    path
        The GGUF file.
    tools
        The llama.cpp tools; default :func:`find_tools`.

    Returns
    -------
    GGUFHeader
        Architecture, file type, tokenizer facts and every tensor's type and shape.
    """
    tools = tools or find_tools()
    proc = subprocess.run(
        [sys.executable, "-m", "finetune_training.gguf_inspect", str(tools.src), str(path)],
        env=_subprocess_env(tools),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-10:])
        raise GGUFError("GGUFVerifyFailed", f"`{path.name}` is not a readable GGUF file:\n{tail}")
    return GGUFHeader.model_validate_json(proc.stdout)


def check_tensor_types(header: GGUFHeader, quant: GGUFQuant) -> list[str]:
    """Check that a header's file type and tensor types are what `quant` means.

    Parameters
    ----------
    header
        The file's header.
    quant
        The requested type.

    Returns
    -------
    list of str
        Names of tensors that got a fallback type (rows not a multiple of the type's block size).

    Raises
    ------
    GGUFError
        `GGUFVerifyFailed` when the file type differs, an F16 file holds quantised tensors, or a
        quantised file holds no quantised tensor at all.
    """
    rule = _RULES[quant]
    if header.file_type != rule.file_type:
        raise GGUFError(
            "GGUFVerifyFailed",
            f"file type is {header.file_type}, expected {rule.file_type} ({quant.value})",
        )
    fallback = [t.name for t in header.tensors if t.type not in _UNQUANTISED and t.type not in rule.allowed]
    if quant is GGUFQuant.F16:
        if fallback:
            raise GGUFError("GGUFVerifyFailed", f"an F16 file has quantised tensors: {fallback[:5]}")
        if header.tensor_types.get("F16", 0) == 0:
            raise GGUFError("GGUFVerifyFailed", f"an F16 file has no F16 tensor ({header.tensor_types})")
    elif not fallback and not any(header.tensor_types.get(t, 0) for t in rule.allowed):
        raise GGUFError(
            "GGUFVerifyFailed",
            f"no tensor of a {quant.value} file is quantised (types: {header.tensor_types})",
        )
    return fallback


def generate_one_token(path: Path, tools: GGUFTools | None = None, prompt: str = _PROMPT) -> str:
    """Load a GGUF with llama.cpp and generate one token greedily.

    Parameters
    ----------
    path
        The GGUF file.
    tools
        The llama.cpp tools; default :func:`find_tools`.
    prompt
        The text to continue.

    Returns
    -------
    str
        The generated text after `prompt` (empty when the model chose end of generation).

    Raises
    ------
    GGUFError
        `GGUFVerifyFailed` when llama.cpp cannot load the file or evaluate it.
    """
    tools = tools or find_tools()
    proc = subprocess.run(
        [str(tools.simple), "-m", str(path), "-n", "1", "-ngl", "0", prompt],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
        timeout=1800,
    )
    decoded = "main: decoded" in proc.stderr
    if proc.returncode != 0 or not decoded:
        tail = "\n".join(proc.stderr.strip().splitlines()[-12:])
        raise GGUFError("GGUFVerifyFailed", f"llama.cpp could not load and run `{path.name}`:\n{tail}")
    # llama-simple prints the prompt's pieces, then the generated piece, then a newline.
    text = proc.stdout.removesuffix("\n")
    return text[len(prompt) :] if text.startswith(prompt) else text


def verify_gguf(
    path: Path, expect_quant: GGUFQuant, *, allow_fallback: bool = True, tools: GGUFTools | None = None
) -> GGUFCheck:
    """Check a GGUF file: header, tensor types, and that llama.cpp loads it and generates a token.

    Parameters
    ----------
    path
        The GGUF file.
    expect_quant
        The type it must have.
    allow_fallback
        Accept tensors llama.cpp had to give another quantised type (common for released models whose
        hidden size is not a multiple of 256: Qwen2.5-0.5B's 896); they are logged and listed in the
        result. False makes any fallback an error.
    tools
        The llama.cpp tools; default :func:`find_tools`.

    Returns
    -------
    GGUFCheck
        What was checked, for the README and the logs.

    Raises
    ------
    GGUFError
        `GGUFVerifyFailed` with what is wrong; `GGUFToolsMissing` without the tools.
    """
    path = Path(path)
    if not path.is_file():
        raise GGUFError("GGUFVerifyFailed", f"`{path}` does not exist")
    tools = tools or find_tools()
    header = read_header(path, tools)
    if not header.architecture:
        raise GGUFError("GGUFVerifyFailed", f"`{path.name}` has no `general.architecture`")
    fallback = check_tensor_types(header, expect_quant)
    if fallback:
        message = (
            f"{len(fallback)} of {len(header.tensors)} tensors of `{path.name}` are not {expect_quant.value} "
            f"types (llama.cpp fell back because their rows do not fit): {', '.join(fallback[:5])}"
        )
        if not allow_fallback:
            raise GGUFError("GGUFVerifyFailed", message)
        _log(f"warning: {message}")
    generated = generate_one_token(path, tools)
    assert header.file_type is not None  # checked against the rule above
    check = GGUFCheck(
        path=path,
        quant=expect_quant,
        size_bytes=path.stat().st_size,
        architecture=header.architecture,
        file_type=header.file_type,
        tensor_types=header.tensor_types,
        fallback_tensors=fallback,
        tokenizer_pre=header.tokenizer_pre,
        has_chat_template=header.has_chat_template,
        prompt=_PROMPT,
        generated=generated,
    )
    _log(f"verified {path.name}: {header.architecture}, {header.tensor_types}, generated {generated!r}")
    return check
