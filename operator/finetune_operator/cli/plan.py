"""`ftjob plan -f job.yaml`: the hardware, PEFT mode, settings, time and cost the operator would choose.

Works without a cluster: the model's size comes from the Hub (`HF_ENDPOINT`, `HF_TOKEN`) or a local folder
(or `--offline-model-params`), the dataset's size from `ftjob validate`'s inspection (or `--rows` and
`--mean-tokens`), the HF Jobs prices from the Jobs API when it answers (else the built-in list). It plans
through the operator's own planner service with the operator's configuration (`--config`: the chart's
rendered `config.yaml` or a Helm values file; else `FTJOB_CONFIG` and `FTJOB_*`, as the operator reads them),
so `config.planner` and `config.gpu_prices` mean the same here as in the cluster.

Exit codes: 0 with a plan; 1 when the job cannot be planned as written (nothing fits, over budget: the
message says what to change); 2 for bad input (unreadable YAML, invalid spec, missing model).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from finetune_operator import KIND
from finetune_operator.api.spec import Backend, FineTuneJobSpec
from finetune_operator.config import OperatorConfig
from finetune_operator.errors import RetryLater, SpecError
from finetune_operator.lifecycle.cost import format_usd
from finetune_operator.planner_service import PlannerService
from finetune_operator.planning.config import PlannerConfig
from finetune_operator.planning.model_info import ModelInfo, model_info_from_parameters
from finetune_operator.planning.offers import OFFERS
from finetune_operator.planning.policy import PlanDecision

# Failures a user can fix in the job (exit 1) rather than in the command line or input files (exit 2).
PLAN_REASONS = {
    "NoHardwareFits",
    "BudgetExceeded",
    "TimeoutTooShort",
    "HardwareInvalid",
    "HyperparametersInvalid",
}


def register(subparsers: Any, name: str) -> None:
    """Add the `plan` subcommand."""
    p = subparsers.add_parser(
        name,
        help="plan hardware, PEFT mode, time and cost for a FineTuneJob (no cluster needed)",
        description="Read a FineTuneJob YAML, size the model (Hub or local folder) and the dataset, and "
        "print the hardware, PEFT mode, settings, estimated hours and cost the operator would choose, "
        "and why.",
    )
    p.add_argument(
        "-f", "--file", required=True, help="FineTuneJob YAML (a whole resource, or just its spec)"
    )
    p.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    p.add_argument("--rows", type=int, help="dataset rows (skips reading the dataset)")
    p.add_argument("--mean-tokens", type=float, help="mean tokens per row (skips reading the dataset)")
    p.add_argument(
        "--offline-model-params",
        type=float,
        metavar="N",
        help="model parameter count, e.g. 7e9 (skips the Hub; the shape is a typical decoder of that size)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="the operator's configuration: its config.yaml (the chart's ConfigMap), or a Helm values file "
        "(its `config:` is read); default: FTJOB_CONFIG and FTJOB_* variables, as the operator reads them",
    )
    p.add_argument(
        "--planner-config",
        metavar="FILE",
        help="older form of --config; a file of bare planner settings (`config.planner`) is read too",
    )
    p.add_argument("--no-live-catalog", action="store_true", help="use the built-in HF Jobs price list")
    p.set_defaults(func=run)


def read_spec(path: str) -> tuple[str, FineTuneJobSpec]:
    """The job's name and validated spec from a YAML file.

    Raises
    ------
    ValueError
        With a readable message for unreadable files, bad YAML, the wrong kind or an invalid spec.
    """
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read `{path}`: {exc.strerror or exc}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"`{path}` is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"`{path}` must hold a {KIND} (a mapping with `spec`)")
    if "spec" in doc:
        if doc.get("kind", KIND) != KIND:
            raise ValueError(f"`{path}` is a {doc.get('kind')}, not a {KIND}")
        name = str((doc.get("metadata") or {}).get("name") or Path(path).stem)
        body = doc["spec"]
    else:
        name, body = Path(path).stem, doc
    try:
        return name, FineTuneJobSpec.model_validate(body)
    except ValidationError as exc:
        problems = "\n".join(
            f"  spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ValueError(f"`{path}` is not a valid {KIND} spec:\n{problems}") from exc


def dataset_size(
    spec: FineTuneJobSpec, rows: int | None, mean_tokens: float | None, token: str | None
) -> tuple[int | None, float | None, list[str]]:
    """Rows and mean tokens per row: the flags, else the dataset inspection; notes for the user."""
    notes: list[str] = []
    if rows is not None and mean_tokens is not None:
        return rows, mean_tokens, notes
    try:
        from finetune_operator.validation import inspect_dataset
    except ImportError:
        notes.append("dataset inspection is not available: pass `--rows` and `--mean-tokens`")
        return rows, mean_tokens, notes
    max_length = (spec.hyperparameters.max_length if spec.hyperparameters else None) or 1024
    try:
        report = inspect_dataset(
            spec.dataset, token=token, methods=[spec.method.value], max_length=max_length
        )
    except RetryLater as exc:
        notes.append(f"dataset not read ({exc.message}): its size is unknown")
        return rows, mean_tokens, notes
    verdict = report.verdict(spec.method.value)
    if verdict is not None and verdict.verdict.value != "Ready":
        notes.append(f"dataset is {verdict.verdict.value} for {spec.method.value}: {verdict.reason}")
    if report.rows_estimated:
        notes.append("dataset rows estimated from file sizes")
    if report.lengths is not None and report.lengths.estimated:
        notes.append("token counts estimated as characters / 4")
    return (
        rows if rows is not None else report.rows,
        mean_tokens if mean_tokens is not None else (report.lengths.mean if report.lengths else None),
        notes,
    )


PLANNER_KEYS = {*PlannerConfig.model_fields, *(to_camel(name) for name in PlannerConfig.model_fields)}


def operator_config(path: str | None) -> OperatorConfig:
    """The configuration to plan with: the operator's config file or a Helm values file at `path` (a file of
    bare planner settings is the `planner` section), else what the operator would read; `FTJOB_*` win.

    Raises
    ------
    ValueError
        For an unreadable file or bad YAML (pydantic's ValidationError, a ValueError, for bad settings).
    """
    if path is None:
        return OperatorConfig.load()
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ValueError(f"cannot read `{path}`: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"`{path}` is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"`{path}` must hold the operator's configuration (a mapping)")
    if isinstance(doc.get("config"), dict):  # a Helm values file
        doc = doc["config"]
    if doc and set(doc) <= PLANNER_KEYS:
        doc = {"planner": doc}
    return OperatorConfig.from_mapping(doc)


def run(args: argparse.Namespace) -> int:
    """Plan and print; returns the exit code."""
    token = os.environ.get("HF_TOKEN") or None
    try:
        name, spec = read_spec(args.file)
        bad_rows = args.rows is not None and args.rows < 0
        if bad_rows or (args.mean_tokens is not None and args.mean_tokens <= 0):
            raise ValueError("`--rows` must be >= 0 and `--mean-tokens` > 0")
        cfg = operator_config(args.config or args.planner_config)
        priced_elsewhere = spec.backend != Backend.AUTO and not OFFERS[spec.backend].needs_catalog
        live = not (args.no_live_catalog or priced_elsewhere or os.environ.get("HF_HUB_OFFLINE"))
        planner = PlannerService(cfg, None, live_catalog=live)  # no cluster: no in-cluster offers
        params = args.offline_model_params
        model = model_info_from_parameters(params) if params is not None else planner.model_info(spec, token)
        rows, mean, notes = dataset_size(spec, args.rows, args.mean_tokens, token)
        catalog = planner.catalog(token)
        decision = planner.plan(spec, token=token, rows=rows, mean_tokens=mean, model=model)
    except SpecError as exc:
        print(f"error: {exc.reason}: {exc.message}", file=sys.stderr)
        return 1 if exc.reason in PLAN_REASONS else 2
    except RetryLater as exc:
        print(f"error: {exc.message} (transient: try again)", file=sys.stderr)
        return 2
    except (ValueError, OSError, ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output == "json":
        print(decision.model_dump_json(by_alias=True, indent=2))
    else:
        print(render_text(name, spec, model, decision, rows, mean, notes, catalog.source))
    return 0


def render_text(
    name: str,
    spec: FineTuneJobSpec,
    model: ModelInfo,
    d: PlanDecision,
    rows: int | None,
    mean: float | None,
    notes: list[str],
    catalog_source: str,
) -> str:
    """The readable plan."""
    hp = d.hyperparameters
    m = d.memory
    data = "size unknown"
    if rows is not None:
        data = f"{rows:,} rows x {mean or hp.max_length / 2:.0f} tokens"
    tokens = f"{d.summary.tokens:,} training tokens" if d.summary.tokens is not None else "tokens unknown"
    cpu = not d.summary.gpu_count
    hourly = d.summary.hourly_price_usd
    price = f" at {format_usd(hourly)}/h" if hourly else " (no hourly price)"
    hardware = f"{d.summary.gpu_count}x {d.summary.gpu_product}, {d.summary.gpu_memory_gib or 0:.1f} GiB each"
    if cpu:
        hardware = f"CPU, {d.summary.ram_gib or 0:.1f} GiB RAM"
    settings = (
        f"lr {hp.learning_rate:g}, epochs {hp.epochs:g}, maxLength {hp.max_length}, batch "
        f"{hp.per_device_batch_size} x {hp.gradient_accumulation_steps} accumulation, gradient checkpointing "
        f"{'on' if hp.gradient_checkpointing else 'off'}"
    )
    if spec.method.value == "SFT":
        settings += f", packing {'on' if hp.packing else 'off'}"
    if hp.beta is not None:
        settings += f", beta {hp.beta:g}"
    if hp.num_generations:
        settings += f", {hp.num_generations} generations x {hp.max_completion_length} tokens"
    lines = [
        f"Plan for {KIND} {name} ({spec.method.value})",
        f"  Model      {spec.model.name}: {model.billions:.2f}B parameters ({model.source}, {model.dtype})",
        f"  Dataset    {spec.dataset.name}: {data}; {tokens}",
        f"  Target     {d.summary.target} ({hardware}{', ' + d.sharding.value if d.gpu_count > 1 else ''})",
        f"  PEFT       {d.peft.value}",
        f"  Memory     {m.total_gib:.1f} GiB {'of RAM' if cpu else 'per GPU'}: weights {m.weights_gib:.1f}, "
        f"gradients {m.gradients_gib:.1f}, "
        f"optimizer {m.optimizer_gib:.1f}, reference {m.reference_model_gib:.1f}, activations "
        f"{m.activations_gib:.1f}, overhead {m.overhead_gib:.1f}",
        f"  Estimate   {d.estimated_hours:.2f} h, {format_usd(d.estimated_cost_usd)}"
        f"{price}; "
        f"suggested timeout {d.suggested_timeout}",
        f"  Settings   {settings}",
        f"  Why        {d.reason}",
        f"  Prices     HF Jobs list: {catalog_source}",
    ]
    if d.alternatives:
        lines.append("  Also fits")
        for alt in d.alternatives:
            cost = format_usd(alt.estimated_cost_usd) if alt.estimated_cost_usd is not None else "?"
            lines.append(f"    {alt.target:<28} {alt.peft.value:<6} {alt.memory_gib:>7.1f} GiB  {cost}")
    lines += [f"  Note       {n}" for n in notes]
    return "\n".join(lines)
