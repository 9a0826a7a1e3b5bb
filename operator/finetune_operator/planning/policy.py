"""The hardware policy: pick backend, hardware, PEFT mode and settings the way an experienced engineer would.

- `hardware: Auto`: the cheapest option that fits with headroom (`PlannerConfig.headroom`). With
  `backend: Auto` and `preferCluster`, free in-cluster GPUs that fit win first (they are already paid
  for); otherwise HF Jobs flavors. Ties go to fewer GPUs (leave the cluster to others), then to speed.
- Multi-GPU only when one GPU cannot hold the run: data parallel (DDP) when a replica fits each GPU,
  else FSDP full-shard (ZeRO-3), which divides weights, gradients and optimizer state by the GPU count
  (the plan then sets TRL's `fsdp: "full_shard auto_wrap"`). QLoRA is never sharded (bitsandbytes 4-bit
  weights under FSDP need a special storage dtype): multi-GPU QLoRA is DDP.
- `peft: Auto`: full fine-tuning where it fits on `autoFullMaxGpus` GPUs of an available option, else
  LoRA, else QLoRA; when a budget is set and the chosen mode's cheapest option exceeds it, the next
  lighter mode is tried before refusing.
- Gradient checkpointing only when the run does not fit without it; then the micro-batch halves (the
  accumulation doubles, so the effective batch stays) until it fits. Settings the user gave are kept.
- Explicit choices (`hardware.flavor`, `gpuCount`/`gpuProduct`, `peft`) are checked and refused with the
  reason and the smallest change that would work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import Field

from finetune_operator.api.rules import check_spec
from finetune_operator.api.spec import Backend, FineTuneJobSpec, HyperparametersSpec, parse_duration_seconds
from finetune_operator.api.status import PlanSummary
from finetune_operator.errors import SpecError
from finetune_operator.planning.catalog import HFJobsCatalog
from finetune_operator.planning.cluster import ClusterGpuOffer
from finetune_operator.planning.config import PlannerConfig
from finetune_operator.planning.estimate import (
    TimeEstimate,
    estimate_time,
    format_duration,
    suggested_timeout_hours,
)
from finetune_operator.planning.gpus import GpuType
from finetune_operator.planning.hyperparams import resolve_hyperparameters, user_settings
from finetune_operator.planning.memory import MemoryEstimate, Sharding, TrainingShape, estimate_memory
from finetune_operator.planning.model_info import ModelInfo
from finetune_operator.planning.offers import CPU, OFFERS, Candidate, Inputs, names_hardware
from finetune_operator.planning.throughput import BUILTIN_MEASUREMENTS
from finetune_training.camel import CamelModel
from finetune_training.plan import Hyperparameters, LoraSettings, PeftMode

FSDP_ARGS = {"fsdp": "full_shard auto_wrap"}  # the runtime adds the settings that work (methods.FSDP_CONFIG)


class PlanOption(CamelModel):
    """One option the planner weighed (for `ftjob plan` and the reason)."""

    target: str
    peft: PeftMode
    memory_gib: float
    """Estimated need per GPU."""
    capacity_gib: float
    """Usable memory per GPU after headroom."""
    fits: bool
    estimated_hours: float | None = None
    estimated_cost_usd: float | None = Field(default=None, alias="estimatedCostUSD")


class PlanDecision(CamelModel):
    """The planner's answer: where and how to train, what it costs, and why."""

    summary: PlanSummary
    """What goes into `status.plan`."""
    backend: Backend
    """HFJobs, Kubernetes or Local (never Auto)."""
    peft: PeftMode
    """LoRA, QLoRA or None (never Auto)."""
    hyperparameters: Hyperparameters
    """Every field resolved."""
    flavor: str | None = None
    """HF Jobs flavor."""
    gpu_count: int = 0
    """GPUs on each node."""
    nodes: int = 1
    gpu_product: str | None = None
    """In-cluster (or local) GPU product."""
    sharding: Sharding = Sharding.NONE
    memory: MemoryEstimate
    estimated_hours: float
    estimated_cost_usd: float = Field(alias="estimatedCostUSD")
    suggested_timeout: str
    timeout_seconds: int
    reason: str
    alternatives: list[PlanOption] = Field(default_factory=list)
    """Other options weighed, cheapest first."""


@dataclass
class _Fit:
    cand: Candidate
    peft: PeftMode
    memory: MemoryEstimate
    fits: bool
    hp: Hyperparameters | None = None
    sharding: Sharding = Sharding.NONE
    time: TimeEstimate | None = None

    @property
    def cost(self) -> float:
        return (self.time.hours if self.time else 0.0) * self.cand.usd_per_hour

    def key(self) -> tuple[float, int, float]:
        return (round(self.cost, 2), self.cand.gpu_count, self.time.hours if self.time else 0.0)

    def option(self, headroom: float) -> PlanOption:
        return PlanOption(
            target=self.cand.target,
            peft=self.peft,
            memory_gib=round(self.memory.total_gib, 1),
            capacity_gib=round(self.cand.gpu.memory_gib * (1 - headroom), 1),
            fits=self.fits,
            estimated_hours=round(self.time.hours, 2) if self.time else None,
            estimated_cost_usd=round(self.cost, 2) if self.time else None,
        )


# ---- candidates --------------------------------------------------------------------------------------


def _tiers(spec: FineTuneJobSpec, inp: Inputs) -> tuple[list[list[Candidate]], bool]:
    """Candidate groups in order of preference, and whether the hardware was chosen by the user.

    The order is the policy; each backend's options come from its offers (`offers.OFFERS`). A named backend:
    what is free now before what would queue. `backend: Auto`: the backends it may choose, what they offer
    now, the hardware already paid for (in-cluster GPUs) first with `preferCluster`, else all together.
    """
    hw = spec.hardware
    if spec.backend == Backend.AUTO:
        chosen_from = [o for o in sorted(OFFERS.values(), key=lambda o: o.rented) if o.in_auto(inp.config)]
    else:
        chosen_from = [OFFERS[spec.backend]]
    if hw is not None and names_hardware(hw):
        for offers in chosen_from:  # under Auto: the first backend whose kind of hardware it names
            cands = offers.chosen(inp, hw)
            if cands is not None:
                return _free_first(cands), True
        wrong = chosen_from[0].wrong_hardware if chosen_from else "no backend offers `hardware` here"
        raise SpecError("HardwareInvalid", wrong)
    if spec.backend != Backend.AUTO:
        return _free_first(chosen_from[0].offered(inp)), False
    owned = [c for o in chosen_from if not o.rented for c in o.offered(inp) if c.free_now]
    rented = [c for o in chosen_from if o.rented for c in o.offered(inp) if c.free_now]
    return ([owned, rented] if inp.config.prefer_cluster else [owned + rented]), False


def _free_first(cands: list[Candidate]) -> list[list[Candidate]]:
    """What is free now, then what would queue (an empty group weighs nothing)."""
    return [[c for c in cands if c.free_now], [c for c in cands if not c.free_now]]


# ---- fitting -----------------------------------------------------------------------------------------


def _variants(spec: FineTuneJobSpec, base: Hyperparameters) -> list[tuple[bool, int, int]]:
    user = user_settings(spec.hyperparameters)
    ckpts = [user["gradient_checkpointing"]] if "gradient_checkpointing" in user else [False, True]
    batches = [base.per_device_batch_size]
    if "per_device_batch_size" not in user:
        b = base.per_device_batch_size
        while b > 1:
            b //= 2
            batches.append(b)
    out: list[tuple[bool, int, int]] = [(ckpts[0], batches[0], base.gradient_accumulation_steps)]
    for ckpt in ckpts[1:] or ckpts:
        for b in batches:
            ga = base.gradient_accumulation_steps
            if "gradient_accumulation_steps" not in user:
                ga = max(1, base.gradient_accumulation_steps * base.per_device_batch_size // b)
            if (ckpt, b, ga) not in out:
                out.append((ckpt, b, ga))
    return out


def _fit(spec: FineTuneJobSpec, inp: Inputs, cand: Candidate, peft: PeftMode) -> _Fit:
    base = resolve_hyperparameters(spec.hyperparameters, spec.method, peft)
    lora = spec.lora or LoraSettings()
    capacity = cand.gpu.memory_gib * (1 - inp.config.headroom)
    shardings = [Sharding.NONE] if cand.gpu_count == 1 else [Sharding.DDP]
    if cand.gpu_count > 1 and peft != PeftMode.QLORA:
        shardings.append(Sharding.FSDP)
    smallest: tuple[MemoryEstimate, Sharding] | None = None
    for sharding in shardings:
        for ckpt, batch, accum in _variants(spec, base):
            shape = TrainingShape(
                method=spec.method,
                peft=peft,
                max_length=base.max_length,
                per_device_batch_size=batch,
                gradient_accumulation_steps=accum,
                gradient_checkpointing=ckpt,
                lora_r=lora.r,
                lora_target_modules=lora.target_modules,
                beta=base.beta or 0.0,
                num_generations=base.num_generations or 8,
                max_completion_length=base.max_completion_length or 256,
                bf16=cand.gpu.bf16,
            )
            mem = estimate_memory(inp.model, shape, gpu_count=cand.gpu_count, sharding=sharding)
            if smallest is None or mem.total_gib < smallest[0].total_gib:
                smallest = (mem, sharding)
            if mem.total_gib <= capacity:
                hp = resolve_hyperparameters(
                    spec.hyperparameters,
                    spec.method,
                    peft,
                    gradient_checkpointing=ckpt,
                    per_device_batch_size=batch,
                    gradient_accumulation_steps=accum,
                    bf16=cand.gpu.bf16,
                    extra_args=FSDP_ARGS if sharding == Sharding.FSDP else {},
                )
                time = estimate_time(
                    model=inp.model,
                    method=spec.method,
                    peft=peft,
                    hp=hp,
                    gpu=cand.gpu,
                    gpu_count=cand.gpu_count,
                    rows=inp.rows,
                    mean_tokens=inp.mean_tokens,
                    startup_hours=inp.config.startup_hours,
                    measurements=[*BUILTIN_MEASUREMENTS, *inp.config.throughput_measurements],
                )
                return _Fit(cand, peft, mem, True, hp, sharding, time)
    assert smallest is not None
    return _Fit(cand, peft, smallest[0], False, sharding=smallest[1])


@dataclass
class _Search:
    chosen: _Fit | None
    weighed: list[_Fit]
    over_budget: list[_Fit]
    explicit_hardware: bool


def _peft_modes(spec: FineTuneJobSpec) -> list[PeftMode]:
    if spec.peft == PeftMode.AUTO:
        return [PeftMode.NONE, PeftMode.LORA, PeftMode.QLORA]
    return [spec.peft]


def _search(spec: FineTuneJobSpec, inp: Inputs) -> _Search:
    tiers, explicit = _tiers(spec, inp)
    budget = spec.budget.max_cost_usd if spec.budget else None
    weighed: list[_Fit] = []
    over: list[_Fit] = []
    for peft in _peft_modes(spec):
        for tier in tiers:
            cands = tier
            if spec.peft == PeftMode.AUTO and peft == PeftMode.NONE and not explicit:
                cands = [c for c in tier if c.gpu_count <= inp.config.auto_full_max_gpus]
            if peft == PeftMode.QLORA:  # bitsandbytes' 4-bit kernels need a GPU
                cands = [c for c in cands if c.gpu.name != CPU]
            fits = [_fit(spec, inp, c, peft) for c in cands]
            weighed.extend(fits)
            good = sorted((f for f in fits if f.fits), key=_Fit.key)
            if not good:
                continue
            if (
                budget is not None
                and good[0].time
                and good[0].time.tokens is not None
                and good[0].cost > budget
            ):
                over.append(good[0])
                break  # a lighter PEFT mode may fit the budget; the next tier is never cheaper
            return _Search(good[0], weighed, over, explicit)
    return _Search(None, weighed, over, explicit)


# ---- messages ----------------------------------------------------------------------------------------


def _with_hp(spec: FineTuneJobSpec, **changes: object) -> FineTuneJobSpec:
    hp = (spec.hyperparameters or HyperparametersSpec()).model_copy(update=changes)
    return spec.model_copy(update={"hyperparameters": hp})


def _suggestions(spec: FineTuneJobSpec, inp: Inputs, limit: int = 2) -> list[str]:
    """The smallest changes that would make the job fit, smallest first."""
    user = user_settings(spec.hyperparameters)
    base = resolve_hyperparameters(spec.hyperparameters, spec.method, PeftMode.LORA)
    tries: list[tuple[str, str, FineTuneJobSpec]] = []  # (kind, text, changed spec): one of each kind
    if user.get("gradient_checkpointing") is False:
        tries.append(
            (
                "ckpt",
                "set `hyperparameters.gradientCheckpointing: true`",
                _with_hp(spec, gradient_checkpointing=True),
            )
        )
    if user.get("per_device_batch_size", 1) > 1:
        b = user["per_device_batch_size"]
        tries.append(
            (
                "batch",
                f"set `hyperparameters.perDeviceBatchSize: 1` (and `gradientAccumulationSteps` x{b})",
                _with_hp(spec, per_device_batch_size=1),
            )
        )
    lighter = {PeftMode.NONE: [PeftMode.LORA, PeftMode.QLORA], PeftMode.LORA: [PeftMode.QLORA]}
    for mode in lighter.get(spec.peft, []):
        tries.append(("peft", f"set `peft: {mode.value}`", spec.model_copy(update={"peft": mode})))
    length = base.max_length // 2
    while length >= 256:
        tries.append(
            ("length", f"reduce `hyperparameters.maxLength` to {length}", _with_hp(spec, max_length=length))
        )
        length //= 2
    if spec.hardware and (spec.hardware.flavor or spec.hardware.gpu_count or spec.hardware.gpu_product):
        tries.append(
            ("hw", "leave `hardware` out so the planner picks", spec.model_copy(update={"hardware": None}))
        )
    for name, offers in OFFERS.items():  # a named backend too small: the rented one, where enabled
        if spec.backend not in (Backend.AUTO, name) and offers.rented and offers.in_auto(inp.config):
            tries.append(
                (
                    "backend",
                    f"use `backend: {name.value}`",
                    spec.model_copy(update={"backend": name, "hardware": None}),
                )
            )
    out: list[str] = []
    done: set[str] = set()
    for kind, text, changed in tries:
        if kind in done:
            continue
        try:
            found = _search(changed.model_copy(update={"budget": None}), inp).chosen
        except SpecError:
            continue
        if found is not None:
            done.add(kind)
            out.append(
                f"{text} (then: {found.cand.target}, {found.peft.value}, {found.memory.total_gib:.1f} GiB)"
            )
            if len(out) >= limit:
                break
    return out


def per_device(gpu: GpuType) -> str:
    """How a memory need is spoken of on this hardware: `per GPU`, or `of RAM` on a CPU."""
    return "of RAM" if gpu.name == CPU else "per GPU"


def _no_fit(spec: FineTuneJobSpec, inp: Inputs, search: _Search) -> SpecError:
    model = inp.model
    if search.weighed:
        closest = min(search.weighed, key=lambda f: f.memory.total_gib / f.cand.gpu.memory_gib)
        detail = (
            f"{spec.method.value} of `{spec.model.name}` ({model.billions:.2f}B parameters) with peft "
            f"{closest.peft.value} needs {closest.memory.total_gib:.1f} GiB {per_device(closest.cand.gpu)}; "
            f"{closest.cand.target} has "
            f"{closest.cand.gpu.memory_gib * (1 - inp.config.headroom):.1f} GiB usable "
            f"({inp.config.headroom:.0%} headroom kept)"
        )
    else:
        detail = f"backend {spec.backend.value} offers no hardware here (no free GPUs and no HF Jobs)"
    fixes = _suggestions(spec, inp)
    fix = "; or ".join(fixes) if fixes else "use a smaller model"
    return SpecError("NoHardwareFits", f"nothing fits: {detail}. To make it fit: {fix}")


def _reason(spec: FineTuneJobSpec, inp: Inputs, fit: _Fit, search: _Search) -> str:
    model = inp.model
    parts = [f"{model.billions:.2f}B parameters ({model.source}, {model.dtype})"]
    if spec.peft == PeftMode.AUTO and fit.peft != PeftMode.NONE:
        full = [f for f in search.weighed if f.peft == PeftMode.NONE]
        need = min((f.memory.total_gib for f in full), default=0.0)
        parts.append(
            f"full fine-tuning needs {need:.0f} GiB {per_device(fit.cand.gpu)}, more than any allowed "
            "option holds"
            + ("; LoRA too" if fit.peft == PeftMode.QLORA else "")
            + f", so peft {fit.peft.value}"
        )
    elif spec.peft == PeftMode.AUTO:
        parts.append("full fine-tuning fits, so peft None")
    if search.over_budget:
        parts.append("lighter PEFT chosen to stay within `budget.maxCostUSD`")
    capacity = fit.cand.gpu.memory_gib * (1 - inp.config.headroom)
    where = "chosen in `hardware`" if search.explicit_hardware else OFFERS[fit.cand.backend].reason
    parts.append(
        f"needs {fit.memory.total_gib:.1f} GiB {per_device(fit.cand.gpu)}, {fit.cand.target} gives "
        f"{capacity:.1f} GiB usable ({where})"
    )
    if fit.sharding != Sharding.NONE:
        across = f" on {fit.cand.nodes} nodes" if fit.cand.nodes > 1 else ""
        parts.append(f"{fit.cand.gpu_count} GPUs{across} with {fit.sharding.value}")
    if (
        fit.hp
        and fit.hp.gradient_checkpointing
        and "gradient_checkpointing" not in user_settings(spec.hyperparameters)
    ):
        parts.append("gradient checkpointing on (needed to fit)")
    if not fit.cand.free_now:
        parts.append("the GPUs are busy now: the job will queue")
    if fit.time and fit.time.tokens is None:
        parts.append("dataset size unknown: time and cost cover start-up only")
    elif fit.time and fit.time.generation_hours:
        parts.append(
            f"generation takes {fit.time.generation_hours / max(fit.time.hours, 1e-9):.0%} of the time"
        )
    return "; ".join(parts)


# ---- entry point -------------------------------------------------------------------------------------


def _check_spec(spec: FineTuneJobSpec) -> None:
    # The spec's cross-field rules, the same table (and messages) as the CRD's CEL rules.
    check_spec(spec)


def make_plan(
    spec: FineTuneJobSpec,
    *,
    model: ModelInfo,
    dataset_rows: int | None,
    mean_tokens: float | None,
    catalog: HFJobsCatalog,
    cluster_offers: Sequence[ClusterGpuOffer],
    config: PlannerConfig,
) -> PlanDecision:
    """Choose backend, hardware, PEFT mode and hyperparameters for a FineTuneJob, with an estimate.

    Parameters
    ----------
    spec
        The FineTuneJob's spec.
    model
        The base model's size and shape.
    dataset_rows
        Rows in the training split (None: unknown; the estimate then covers start-up only).
    mean_tokens
        Mean tokens per row (None: half of `maxLength`).
    catalog
        HF Jobs flavors and prices.
    cluster_offers
        In-cluster GPUs (empty outside a cluster).
    config
        Planner settings.

    Returns
    -------
    PlanDecision

    Raises
    ------
    SpecError
        `NoHardwareFits` (with the smallest change that would fit), `HardwareInvalid`, `BudgetExceeded`,
        `TimeoutTooShort` or `HyperparametersInvalid`; and, for a spec that breaks one of the rules the
        CRD's CEL carries (`api.rules`), that rule's reason and the API server's message.
    """
    _check_spec(spec)
    inp = Inputs(model, dataset_rows, mean_tokens, catalog, cluster_offers, config)
    search = _search(spec, inp)
    fit = search.chosen
    if fit is None and search.over_budget:
        cheapest = min(search.over_budget, key=lambda f: f.cost)
        budget = spec.budget.max_cost_usd if spec.budget else 0.0
        options = ", ".join(
            f"{f.cand.target} with peft {f.peft.value} ~${f.cost:.2f}"
            for f in sorted(search.over_budget, key=lambda f: f.cost)
        )
        raise SpecError(
            "BudgetExceeded",
            f"the estimated cost ${cheapest.cost:.2f} ({cheapest.time.hours if cheapest.time else 0:.1f}h on "
            f"{cheapest.cand.target}) exceeds `budget.maxCostUSD` ${budget:.2f}; "
            f"cheapest options: {options}. "
            f"Raise `budget.maxCostUSD`, or lower `hyperparameters.epochs`/`maxSteps` or the dataset size",
        )
    if fit is None:
        raise _no_fit(spec, inp, search)
    assert fit.hp is not None and fit.time is not None
    hours = round(fit.time.hours, 3)
    # Kept to a millionth of a dollar: a smoke test costs well under a cent and must not read $0.
    cost = round(fit.cost, 6)
    timeout_h = suggested_timeout_hours(fit.time.hours, config.timeout_margin)
    if spec.budget and spec.budget.timeout and fit.time.tokens is not None:
        limit = parse_duration_seconds(spec.budget.timeout)
        if fit.time.hours * 3600 > limit:
            raise SpecError(
                "TimeoutTooShort",
                f"the run is estimated at {format_duration(fit.time.hours)} on {fit.cand.target}, "
                "longer than "
                f"`budget.timeout` {spec.budget.timeout}; raise it to at least "
                f"{format_duration(timeout_h)} or train on less data",
            )
    reason = _reason(spec, inp, fit, search)
    cpu = fit.cand.gpu.name == CPU
    memory = fit.memory.model_copy(update={"gpu_count": 0}) if cpu else fit.memory
    summary = PlanSummary(
        backend=fit.cand.backend.value,
        target=fit.cand.target,
        flavor=fit.cand.flavor,
        gpu_count=0 if cpu else fit.cand.gpu_count // fit.cand.nodes,
        nodes=fit.cand.nodes,
        gpu_product=None if cpu else fit.cand.gpu_product or fit.cand.gpu.name,
        gpu_memory_gib=None if cpu else round(fit.cand.gpu.memory_gib, 2),
        ram_gib=round(fit.cand.gpu.memory_gib, 2) if cpu else None,
        peft=fit.peft,
        parameters_billions=round(model.billions, 3),
        memory_gib=round(fit.memory.total_gib, 2),
        estimated_hours=hours,
        estimated_cost_usd=cost,
        hourly_price_usd=round(fit.cand.usd_per_hour, 4),
        suggested_timeout=format_duration(timeout_h),
        tokens=fit.time.tokens,
        reason=reason,
        hyperparameters=fit.hp,
    )
    alternatives = sorted((f for f in search.weighed if f is not fit and f.fits), key=_Fit.key)[:5]
    return PlanDecision(
        summary=summary,
        backend=fit.cand.backend,
        peft=fit.peft,
        hyperparameters=fit.hp,
        flavor=fit.cand.flavor,
        gpu_count=summary.gpu_count,
        nodes=fit.cand.nodes,
        gpu_product=fit.cand.gpu_product,
        sharding=fit.sharding,
        memory=memory,
        estimated_hours=hours,
        estimated_cost_usd=cost,
        suggested_timeout=summary.suggested_timeout,
        timeout_seconds=int(timeout_h * 3600),
        reason=reason,
        alternatives=[f.option(config.headroom) for f in alternatives],
    )
