"""The model card (README.md with YAML front matter) of the trained model; GGUF repos get `gguf_readme`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from finetune_training.plan import PeftMode, TrainingPlan
from finetune_training.profiles import profile


def is_adapter(plan: TrainingPlan) -> bool:
    """True when the pushed weights are a PEFT adapter rather than a full model."""
    return plan.peft in (PeftMode.LORA, PeftMode.QLORA) and not plan.output.merge_adapter


def _front_matter(data: Mapping[str, object]) -> str:
    return "---\n" + yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True) + "---\n"


def _is_hub_id(name: str) -> bool:
    return not Path(name).expanduser().exists() and name.count("/") == 1


def render_model_card(
    plan: TrainingPlan, metrics: Mapping[str, float], trackio_url: str | None = None
) -> str:
    """The README.md of the trained model.

    Parameters
    ----------
    plan
        The plan the model was trained with (method, hyperparameters, the FineTuneJob YAML).
    metrics
        Final training metrics (`train_loss`, `train_runtime`, ...).
    trackio_url
        Where the run's curves are.

    Returns
    -------
    str
        Markdown with front matter: `base_model`, `datasets`, `library_name`, `tags`.
    """
    adapter = is_adapter(plan)
    meta: dict[str, object] = {}
    if _is_hub_id(plan.model):
        meta["base_model"] = plan.model
    if _is_hub_id(plan.dataset.name):
        meta["datasets"] = [plan.dataset.name]
    meta["library_name"] = "peft" if adapter else "transformers"
    meta["tags"] = ["trl", profile(plan.method).tag, "finetune-operator"] + (["lora"] if adapter else [])
    meta["pipeline_tag"] = "text-generation"

    kind = "a LoRA adapter" if adapter else "a model"
    peft_text = {
        PeftMode.LORA: f"LoRA (r={plan.lora.r}, alpha={plan.lora.alpha})",
        PeftMode.QLORA: f"QLoRA, 4-bit NF4 base (r={plan.lora.r}, alpha={plan.lora.alpha})",
    }.get(plan.peft, "full fine-tuning")
    lines = [
        f"# {plan.output.repo or plan.job.name}",
        "",
        f"This is {kind} trained from `{plan.model}` on `{plan.dataset.name}` (split `{plan.dataset.split}`) "
        f"with {profile(plan.method).title} using [TRL](https://github.com/huggingface/trl), {peft_text}, "
        f"by the finetune-operator job `{plan.job.namespace}/{plan.job.name}` (attempt {plan.job.attempt}).",
        "",
        "## Training hyperparameters",
        "",
        "| name | value |",
        "|---|---|",
    ]
    for key, value in plan.hyperparameters.wire().items():
        lines.append(f"| {key} | `{value}` |")
    if plan.rewards:
        lines += ["", "## Rewards", ""]
        lines += [f"- {r.type.value} (weight {r.weight})" for r in plan.rewards]
    evaluation = _evaluation_rows(metrics)
    if evaluation:
        held_out = (
            f"split `{plan.evaluation.split}`"
            if plan.evaluation and plan.evaluation.split
            else "rows held out from the training split (never trained on)"
        )
        lines += ["", "## Evaluation", "", f"On {held_out}:", "", "| metric | base model | fine-tuned |"]
        lines += ["|---|---|---|", *evaluation]
    lines += ["", "## Final metrics", ""]
    if metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.6g} |" for k, v in sorted(metrics.items())]
    else:
        lines.append("No metrics were recorded.")
    if trackio_url:
        lines += [
            "",
            f"Training curves: [trackio]({trackio_url}) (project `{plan.tracking.project}`, "
            f"run `{plan.tracking.run_name}`).",
        ]
    if adapter:
        lines += [
            "",
            "## Use",
            "",
            "```python",
            "from peft import AutoPeftModelForCausalLM",
            f'model = AutoPeftModelForCausalLM.from_pretrained("{plan.output.repo or plan.job.name}")',
            "```",
        ]
    if plan.finetune_job_yaml:
        lines += ["", "## FineTuneJob", "", "```yaml", plan.finetune_job_yaml.rstrip(), "```"]
    return _front_matter(meta) + "\n" + "\n".join(lines) + "\n"


def _evaluation_rows(metrics: Mapping[str, float]) -> list[str]:
    """`| eval metric | base | fine-tuned |` rows from `eval_*` and `base_eval_*` metrics (runtime and
    sample counters left out)."""
    rows = []
    for key in sorted(k for k in metrics if k.startswith("eval_")):
        if key.endswith(("_runtime", "_per_second", "_samples", "_steps")) or key == "eval_epoch":
            continue
        base = metrics.get(f"base_{key}")
        base_text = f"{base:.4g}" if base is not None else "—"
        rows.append(f"| {key.removeprefix('eval_')} | {base_text} | {metrics[key]:.4g} |")
    return rows
