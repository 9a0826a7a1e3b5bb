"""The README.md of a GGUF repo: what each file is, how big, and how to run it with llama.cpp or Ollama."""

from __future__ import annotations

from collections.abc import Sequence

import yaml

from finetune_training.gguf import GGUFCheck
from finetune_training.plan import GGUFQuant

# What llama.cpp users usually want to know when picking a file.
_QUANT_NOTES: dict[GGUFQuant, str] = {
    GGUFQuant.F16: "16-bit, no quantisation loss; the reference",
    GGUFQuant.Q8_0: "8-bit, nearly lossless",
    GGUFQuant.Q6_K: "6-bit K-quant, very close to F16",
    GGUFQuant.Q5_K_M: "5-bit K-quant, high quality",
    GGUFQuant.Q5_0: "5-bit legacy quant",
    GGUFQuant.Q4_K_M: "4-bit K-quant, the usual balance of size and quality",
    GGUFQuant.Q4_0: "4-bit legacy quant, fastest on some CPUs",
    GGUFQuant.Q3_K_M: "3-bit K-quant, small, noticeable quality loss",
    GGUFQuant.Q2_K: "2-bit K-quant, smallest, large quality loss",
}


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def gguf_readme(
    repo_id: str,
    checks: Sequence[GGUFCheck],
    *,
    source_repo: str | None = None,
    base_model: str | None = None,
    job: str | None = None,
    tools_version: str | None = None,
) -> str:
    """Render the GGUF repo's model card.

    Parameters
    ----------
    repo_id
        The GGUF repo (`org/name-GGUF`), used in the run commands.
    checks
        The verified files (:func:`finetune_training.gguf.verify_gguf`), in table order.
    source_repo
        The fine-tuned model repo these files were converted from; it becomes `base_model` with
        `base_model_relation: quantized`, as the Hub expects for GGUF repos.
    base_model
        The model that was fine-tuned, used as `base_model` when there is no `source_repo`.
    job
        The FineTuneJob (`namespace/name`) that produced the files.
    tools_version
        The llama.cpp tools' version (`llama-cpp-python==0.3.36`).

    Returns
    -------
    str
        Markdown with YAML front matter.
    """
    meta: dict[str, object] = {}
    if source_repo:
        meta["base_model"] = source_repo
        meta["base_model_relation"] = "quantized"
    elif base_model:
        meta["base_model"] = base_model
    meta["library_name"] = "gguf"
    meta["tags"] = ["gguf", "llama.cpp", "finetune-operator"]
    meta["pipeline_tag"] = "text-generation"
    front = "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"

    source = f"[{source_repo}](https://huggingface.co/{source_repo})" if source_repo else "a fine-tuned model"
    lines = [f"# {repo_id.rsplit('/', 1)[-1]}", "", f"GGUF files of {source}"]
    lines[-1] += f", fine-tuned from `{base_model}`" if base_model else ""
    lines[-1] += f" by the FineTuneJob `{job}`." if job else "."
    lines += ["", "| File | Type | Size | Notes |", "|---|---|---|---|"]
    for c in checks:
        note = _QUANT_NOTES.get(c.quant, "")
        if c.fallback_tensors:
            note += f" ({len(c.fallback_tensors)} tensors use another type: rows not a multiple of 256)"
        lines.append(f"| `{c.path.name}` | {c.quant.value} | {_size(c.size_bytes)} | {note} |")
    if checks:
        pick = next((c for c in checks if c.quant is GGUFQuant.Q4_K_M), checks[0])
        tag, file = pick.quant.value, pick.path.name
        arch = pick.architecture
        lines += [
            "",
            f"Architecture `{arch}`"
            + (
                "; the chat template is embedded, so chat front ends apply it."
                if pick.has_chat_template
                else "."
            ),
            "",
            "## Run",
            "",
            "llama.cpp (downloads the file from this repo):",
            "",
            "```sh",
            f"llama-cli -hf {repo_id}:{tag} -p 'Hello'",
            f"llama-server -hf {repo_id}:{tag}   # OpenAI-compatible API on http://localhost:8080",
            "```",
            "",
            "Ollama:",
            "",
            "```sh",
            f"ollama run hf.co/{repo_id}:{tag}",
            "```",
            "",
            "Or download one file and point any GGUF runtime at it:",
            "",
            "```sh",
            f"hf download {repo_id} {file} --local-dir .",
            f"llama-cli -m {file} -p 'Hello'",
            "```",
        ]
    made_with = f"llama.cpp from {tools_version}" if tools_version else "llama.cpp"
    lines += [
        "",
        f"Converted and quantised with {made_with}; each file was loaded with llama.cpp and generated a "
        "token before upload.",
    ]
    return front + "\n" + "\n".join(lines) + "\n"
