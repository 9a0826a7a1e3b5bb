"""Publishing: the adapter or merged model with its model card, then GGUF files, to the Hub.

Uploads go through `huggingface_hub` (token from `HF_TOKEN`, endpoint from `HF_ENDPOINT`); each landed
artifact is reported as a `published` event with its URL.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, constants

from finetune_training.errors import TrainingError
from finetune_training.events import EventKind, RuntimeEvent, commit_trailer, emit
from finetune_training.hubrepo import ensure_repo
from finetune_training.modelcard import is_adapter, render_model_card
from finetune_training.plan import PeftMode, TrainingPlan

log = logging.getLogger(__name__)

# Trainer leftovers that do not belong in a published model (a pickle, and checkpoint folders).
IGNORE = ["training_args.bin", "checkpoint-*/**", "*.pt", "*.pth"]


def repo_url(repo: str) -> str:
    """The browsable URL of a model repo on the configured endpoint."""
    return f"{constants.ENDPOINT}/{repo}"


def model_name(plan: TrainingPlan) -> str:
    """The short name used for GGUF files: the output repo's name, else the job's."""
    return (plan.output.repo or plan.job.name).rsplit("/", 1)[-1]


def gguf_repo(plan: TrainingPlan) -> str | None:
    """`output.ggufRepo`, defaulting to `<repo>-GGUF`."""
    if plan.output.gguf_repo:
        return plan.output.gguf_repo
    return f"{plan.output.repo}-GGUF" if plan.output.repo else None


def merge_adapter(plan: TrainingPlan, adapter_dir: Path, out_dir: Path, tokenizer: Any) -> Path:
    """Merge a LoRA adapter into a full-precision copy of the base model (never into 4-bit weights).

    Returns
    -------
    Path
        `out_dir`, holding the merged model and tokenizer.
    """
    if out_dir.is_dir() and (out_dir / "config.json").is_file():
        return out_dir
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if plan.hyperparameters.bf16 else torch.float32
    base = AutoModelForCausalLM.from_pretrained(plan.model, revision=plan.model_revision, dtype=dtype)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def push_model(
    plan: TrainingPlan, api: HfApi, folder: Path, metrics: Mapping[str, float], trackio_url: str | None
) -> str:
    """Write the model card into `folder` and upload it to `output.repo`; returns the repo URL."""
    repo = plan.output.repo
    if repo is None:
        raise TrainingError("OutputRepoMissing", "`output.repo` must be set to push the model")
    (folder / "README.md").write_text(render_model_card(plan, metrics, trackio_url))
    ensure_repo(api, repo, plan.output.private)
    api.upload_folder(
        repo_id=repo,
        folder_path=str(folder),
        commit_message=f"{plan.method.value} by finetune-operator ({plan.job.namespace}/{plan.job.name})",
        commit_description=commit_trailer(plan.job.uid),
        ignore_patterns=IGNORE,
    )
    url = repo_url(repo)
    emit(RuntimeEvent(ftjob=EventKind.PUBLISHED, artifact="model", url=url))
    return url


def build_and_push_gguf(plan: TrainingPlan, api: HfApi | None, full_model: Path, out_dir: Path) -> list[str]:
    """Convert the full model to each requested GGUF type, verify each file, push them with a README.

    Returns
    -------
    list of str
        URLs of the pushed files (local `file://` URIs when there is no output repo).
    """
    # Imported here: the GGUF modules need the llama.cpp tools only when GGUF is asked for.
    from finetune_training.gguf import build_gguf, verify_gguf
    from finetune_training.gguf_readme import gguf_readme

    quants = list(plan.output.gguf)
    files = build_gguf(full_model, quants, out_dir, model_name(plan))
    checks = [verify_gguf(path, quant) for path, quant in zip(files, dict.fromkeys(quants), strict=True)]
    repo = gguf_repo(plan)
    if repo is None or api is None:
        urls = [p.resolve().as_uri() for p in files]
    else:
        readme = gguf_readme(
            repo,
            checks,
            source_repo=plan.output.repo,
            base_model=plan.model,
            job=f"{plan.job.namespace}/{plan.job.name}",
        )
        (out_dir / "README.md").write_text(readme)
        ensure_repo(api, repo, plan.output.private)
        api.upload_folder(
            repo_id=repo,
            folder_path=str(out_dir),
            allow_patterns=[p.name for p in files] + ["README.md"],
            commit_message=f"GGUF {', '.join(q.value for q in quants)} by finetune-operator",
            commit_description=commit_trailer(plan.job.uid),
        )
        urls = [f"{repo_url(repo)}/blob/main/{p.name}" for p in files]
    for url in urls:
        emit(RuntimeEvent(ftjob=EventKind.PUBLISHED, artifact="gguf", url=url))
    return urls


def publish(
    plan: TrainingPlan,
    final_dir: Path,
    tokenizer: Any,
    metrics: Mapping[str, float],
    trackio_url: str | None,
    api: HfApi | None,
) -> dict[str, Any]:
    """Push what the plan asks for: the adapter or merged model, then GGUF files.

    Parameters
    ----------
    plan
        The plan (`output` decides what is pushed where).
    final_dir
        The saved result of training (adapter or full model, with tokenizer).
    tokenizer
        Saved next to a merged model.
    metrics
        Final training metrics for the model card.
    trackio_url
        Linked from the model card.
    api
        Hub client; None when nothing is pushed (`output.repo` unset).

    Returns
    -------
    dict
        `model` (URL or None) and `gguf` (list of URLs).
    """
    lora = plan.peft in (PeftMode.LORA, PeftMode.QLORA)
    work = Path(plan.output.local_dir)
    merged: Path | None = None
    if lora and (plan.output.merge_adapter or plan.output.gguf):
        merged = merge_adapter(plan, final_dir, work / "merged", tokenizer)
    result: dict[str, Any] = {"model": None, "gguf": []}
    if plan.output.repo and api is not None:
        folder = final_dir if is_adapter(plan) or merged is None else merged
        result["model"] = push_model(plan, api, folder, metrics, trackio_url)
    else:
        (final_dir / "README.md").write_text(render_model_card(plan, metrics, trackio_url))
    if plan.output.gguf:
        result["gguf"] = build_and_push_gguf(plan, api, merged or final_dir, work / "gguf")
    return result
