"""How `ftjob status` and `ftjob watch` show a FineTuneJob: plain functions over the resource dict."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from finetune_operator.api.status import TERMINAL_PHASES, FineTuneJobStatus, Phase, Progress
from finetune_operator.lifecycle.cost import format_usd

OUTPUTS = ("text", "summary", "json", "yaml")


def parse_status(obj: dict[str, Any]) -> FineTuneJobStatus:
    """The resource's status as the API model (an empty status for a job not reconciled yet)."""
    return FineTuneJobStatus.model_validate(obj.get("status") or {})


def format_duration(seconds: float | None) -> str:
    """`1h02m`, `5m12s`, `42s`, or `-` when unknown."""
    if seconds is None:
        return "-"
    total = max(0, round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def spoken_duration(seconds: float) -> str:
    """`30 seconds`, `45 minutes`, `1 hour 5 minutes`, `2 days 3 hours`: words a person is told.

    Rounded to the smallest unit shown, which is seconds only under a minute (an agent relays it as is).
    """
    total = max(0, round(seconds))
    if total < 60:
        return _count(total, "second")
    minutes = round(total / 60)
    if minutes < 60:
        return _count(minutes, "minute")
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return _count(hours, "hour") + (f" {_count(minutes, 'minute')}" if minutes else "")
    days, hours = divmod(round(total / 3600), 24)
    return _count(days, "day") + (f" {_count(hours, 'hour')}" if hours else "")


def format_number(value: float | None, digits: int = 4) -> str:
    """A compact number (`1.234`, `2e-05`), or `-` when unknown."""
    return "-" if value is None else f"{value:.{digits}g}"


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """How long ago an RFC 3339 time was, kubectl style (`5m12s`), or `-`."""
    if not timestamp:
        return "-"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    return format_duration(((now or datetime.now(UTC)) - then).total_seconds())


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Left-aligned columns, two spaces apart, like `kubectl get`."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    return [
        indent + "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]


def _fields(pairs: Sequence[tuple[str, str | None]], indent: str = "") -> list[str]:
    shown = [(k, v) for k, v in pairs if v not in (None, "")]
    width = max((len(k) for k, _ in shown), default=0) + 1
    return [f"{indent}{(k + ':').ljust(width)}  {v}" for k, v in shown]


def _spec_pairs(spec: dict[str, Any]) -> list[tuple[str, str | None]]:
    # Shown as written: the spec is the user's own text, and the operator validates it.
    model = spec.get("model")
    model_name = model.get("name") if isinstance(model, dict) else model
    dataset = spec.get("dataset") or {}
    dataset_name = dataset.get("name") if isinstance(dataset, dict) else dataset
    output = spec.get("output") or {}
    return [
        ("Method", spec.get("method")),
        ("Model", model_name),
        ("Dataset", dataset_name),
        ("Backend", spec.get("backend")),
        ("Output", output.get("repo") if isinstance(output, dict) else None),
        ("Suspended", "yes" if spec.get("suspend") else None),
    ]


def progress_summary(progress: Progress | None) -> str:
    """`42/100 (42%)`, or `-` before training."""
    if progress is None:
        return "-"
    total = f"/{progress.total_steps}" if progress.total_steps else ""
    percent = f" ({progress.percent})" if progress.percent else ""
    return f"{progress.step}{total}{percent}"


SEPARATOR = " \u00b7 "

_PHASE_WORDS = {
    Phase.PENDING: "is pending",
    Phase.VALIDATING: "is validating its dataset",
    Phase.BLOCKED: "is blocked",
    Phase.PLANNED: "is planned",
    Phase.SUSPENDED: "is suspended",
    Phase.QUEUED: "is queued",
    Phase.RUNNING: "is running",
    Phase.PUBLISHING: "is publishing",
    Phase.SUCCEEDED: "succeeded",
    Phase.FAILED: "failed",
    Phase.CANCELLED: "was cancelled",
}


def _trend(name: str, latest: float, first: float | None, higher_is_better: bool = False) -> str:
    text = f"{name} {latest:.3g}"
    if first is None or f"{first:.3g}" == f"{latest:.3g}":
        return text
    direction = "up" if latest > first else "down"
    return f"{text} ({direction} from {first:.3g} at start)"


def summary_line(status: FineTuneJobStatus, name: str | None = None, method: str | None = None) -> str:
    """The one line an agent relays: phase, elapsed time, steps, the metric that matters, time left, cost.

    `Job support-bot is running (45 minutes elapsed) · step 850/1200 · training loss 1.23 (down from 2.41
    at start) · learning rate 1.2e-05 · ~20 minutes left · estimated cost $0.42`. GRPO shows its mean reward
    (its loss says little), DPO its reward accuracy and margin beside the loss.

    Parameters
    ----------
    status
        The job's status.
    name
        The job's name (`namespace/name` or `name`); omitted when None.
    method
        `spec.method` (SFT, DPO, GRPO); None reads whichever metrics are there.
    """
    p = status.progress
    head = ("Job " + name + " " if name else "Job ") + _PHASE_WORDS.get(status.phase, status.phase.value)
    if p is not None and p.elapsed_seconds is not None:
        head += f" ({spoken_duration(p.elapsed_seconds)} elapsed)"
    if status.phase in (Phase.BLOCKED, Phase.FAILED, Phase.PENDING) and status.message:
        head += f": {status.message}"
    parts = [head]
    if p is not None and (p.step or p.total_steps):
        parts.append(f"step {p.step}/{p.total_steps}" if p.total_steps else f"step {p.step}")
        grpo = method == "GRPO" or (method is None and p.reward is not None)
        if grpo and p.reward is not None:
            parts.append(_trend("mean reward", p.reward, p.first_reward))
            if p.rewards and len(p.rewards) > 1:
                parts.append(", ".join(f"{k} {v:.3g}" for k, v in p.rewards.items()))
        elif p.loss is not None:
            parts.append(_trend("training loss", p.loss, p.first_loss))
        if p.reward_accuracy is not None:
            margin = "" if p.reward_margin is None else f", margin {p.reward_margin:.3g}"
            parts.append(f"reward accuracy {p.reward_accuracy:.0%}{margin}")
        if p.evaluation is not None and p.evaluation.loss is not None:
            base = p.evaluation.base_loss
            parts.append(f"eval loss {p.evaluation.loss:.3g}" + (f" (base model {base:.3g})" if base else ""))
        if p.learning_rate is not None and status.phase == Phase.RUNNING:
            parts.append(f"learning rate {p.learning_rate:.2g}")
        if p.eta_seconds and status.phase == Phase.RUNNING:
            parts.append(f"~{spoken_duration(p.eta_seconds)} left")
    cost = cost_summary(status)
    if cost:
        parts.append(cost)
    return SEPARATOR.join(parts)


def cost_summary(status: FineTuneJobStatus) -> str | None:
    """`cost $0.31 so far at $1.50/h (estimate $0.75)` once the work ran, `estimated cost $0.75` before,
    or None before a plan."""
    plan, cost = status.plan, status.cost
    if cost is not None and cost.running_seconds > 0:
        ended = status.phase in TERMINAL_PHASES
        text = f"cost {format_usd(cost.actual_usd)}" + ("" if ended else " so far")
        if cost.hourly_price_usd:
            text += f" at {format_usd(cost.hourly_price_usd)}/h"
        if plan is not None:
            text += f" (estimate {format_usd(plan.estimated_cost_usd)})"
        return text
    if plan is None:
        return None
    hourly = f" at {format_usd(plan.hourly_price_usd)}/h" if plan.hourly_price_usd else ""
    return f"estimated cost {format_usd(plan.estimated_cost_usd)}{hourly}"


def _job_name(obj: dict[str, Any]) -> str | None:
    name = (obj.get("metadata") or {}).get("name")
    return str(name) if name else None


def _method(obj: dict[str, Any]) -> str | None:
    method = (obj.get("spec") or {}).get("method")
    return str(method) if method else None


def rows_summary(progress: Progress) -> str | None:
    """Why steps and epochs are what they are: rows, examples built from them, examples per step."""
    r = progress.rows
    if r is None:
        return None
    made = f"{r.examples:,} packed sequences" if r.packed else f"{r.examples:,} examples"
    text = f"{r.dataset_rows:,} rows (none held out) -> {made}"
    if r.dropped_rows:
        text += f" ({r.dropped_rows:,} rows dropped: {r.dropped_reason or 'left out by the trainer'})"
    if r.truncated_rows:
        text += f" ({r.truncated_rows:,} rows cut at maxLength {r.max_length})"
    text += f"; {r.examples_per_step:,} examples per step"
    if r.generations_per_prompt:
        prompts = r.examples_per_step // max(1, r.generations_per_prompt)
        text += f" ({prompts} prompts x {r.generations_per_prompt} generations)"
    elif r.examples_per_step:
        text += f", so an epoch is {r.examples / r.examples_per_step:.3g} steps"
    return text


def render_status(obj: dict[str, Any], now: datetime | None = None) -> str:
    """`ftjob status` text: phase, conditions, validation verdicts, plan, progress and outputs.

    Parameters
    ----------
    obj
        The FineTuneJob resource as the API returns it.
    now
        The present, for ages (tests pass a fixed one).

    Returns
    -------
    str
        Readable multi-line text, like `kubectl describe` but only what a fine-tuning user needs.
    """
    meta = obj.get("metadata") or {}
    status = parse_status(obj)
    lines = _fields(
        [
            ("Name", meta.get("name")),
            ("Namespace", meta.get("namespace")),
            ("Phase", status.phase.value),
            ("Summary", summary_line(status, _job_name(obj), _method(obj))),
            *_spec_pairs(obj.get("spec") or {}),
            ("Message", status.message),
            ("Started", status.start_time),
            ("Completed", status.completion_time),
            ("Attempts", str(status.attempts) if status.attempts else None),
            ("Age", age(meta.get("creationTimestamp"), now) if meta.get("creationTimestamp") else None),
        ]
    )
    if status.conditions:
        lines += ["", "Conditions:"]
        rows = [
            [c.type, c.status, c.reason, age(c.last_transition_time, now), c.message]
            for c in status.conditions
        ]
        lines += table(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], rows)
    if status.validation:
        v = status.validation
        lines += ["", "Validation:"]
        lines += _fields(
            [
                ("Dataset", v.dataset + (f" (split {v.split})" if v.split else "")),
                ("Rows", None if v.rows is None else str(v.rows)),
                ("Format", v.format),
                ("Mean tokens", None if v.mean_tokens is None else f"{v.mean_tokens:.0f}"),
            ],
            indent="  ",
        )
        if v.verdicts:
            rows = [
                [
                    m.method,
                    m.verdict.value,
                    m.reason + (f" (conversion: {m.conversion})" if m.conversion else ""),
                ]
                for m in v.verdicts
            ]
            lines += table(["METHOD", "VERDICT", "REASON"], rows)
        lines += [f"  warning: {w}" for w in v.warnings]
    if status.plan:
        plan = status.plan
        gpus = f"{plan.gpu_count}x {plan.gpu_product or 'GPU'}" if plan.gpu_count else "CPU"
        if plan.gpu_memory_gib:
            gpus += f" ({plan.gpu_memory_gib:g} GiB)"
        elif plan.ram_gib:
            gpus += f" ({plan.ram_gib:g} GiB RAM)"
        cpu = not plan.gpu_count
        lines += ["", "Plan:"]
        lines += _fields(
            [
                ("Target", plan.target),
                ("Hardware", gpus),
                ("PEFT", str(plan.peft.value if hasattr(plan.peft, "value") else plan.peft)),
                (
                    "Parameters",
                    None if plan.parameters_billions is None else f"{plan.parameters_billions:g}B",
                ),
                ("Memory", f"{plan.memory_gib:.1f} GiB {'of RAM' if cpu else 'per GPU'}"),
                ("Tokens", None if plan.tokens is None else f"{plan.tokens:,}"),
                ("Price", f"{format_usd(plan.hourly_price_usd)}/h" if plan.hourly_price_usd else "free"),
                ("Estimate", f"{plan.estimated_hours:.2f} h, {format_usd(plan.estimated_cost_usd)}"),
                ("Timeout", plan.suggested_timeout),
                ("Reason", plan.reason),
            ],
            indent="  ",
        )
    if status.progress:
        p = status.progress
        lines += ["", "Progress:"]
        lines += _fields(
            [
                ("Step", progress_summary(p)),
                ("Epoch", None if p.epoch is None else f"{p.epoch:.2f}"),
                ("Data", rows_summary(p)),
                ("Elapsed", None if p.elapsed_seconds is None else format_duration(p.elapsed_seconds)),
                ("Loss", format_number(p.loss)),
                ("First loss", None if p.first_loss is None else format_number(p.first_loss)),
                ("Reward", None if p.reward is None else format_number(p.reward)),
                ("First reward", None if p.first_reward is None else format_number(p.first_reward)),
                *((f"Reward {k}", format_number(v)) for k, v in (p.rewards or {}).items()),
                (
                    "Reward accuracy",
                    None if p.reward_accuracy is None else f"{p.reward_accuracy:.0%}",
                ),
                ("Reward margin", None if p.reward_margin is None else format_number(p.reward_margin)),
                ("Learning rate", None if p.learning_rate is None else f"{p.learning_rate:.3g}"),
                ("Tokens/s", None if p.tokens_per_second is None else f"{p.tokens_per_second:,.0f}"),
                ("ETA", None if p.eta_seconds is None else format_duration(p.eta_seconds)),
                ("Trackio", p.trackio_url),
                ("Updated", p.updated_time),
            ],
            indent="  ",
        )
    if status.cost:
        c = status.cost
        lines += ["", "Cost:"]
        lines += _fields(
            [
                ("Spent", format_usd(c.actual_usd) + (" (all attempts)" if c.earlier_seconds else "")),
                ("Ran", format_duration(c.running_seconds)),
                ("Price", f"{format_usd(c.hourly_price_usd)}/h"),
                ("Started", c.started_time),
                ("Ended", c.ended_time),
            ],
            indent="  ",
        )
    if status.backend_ref:
        ref = status.backend_ref
        where = f"{ref.namespace}/{ref.id}" if ref.namespace else ref.id
        lines += ["", *_fields([("Backend work", f"{ref.kind} {where}"), ("URL", ref.url)])]
    if status.outputs and (status.outputs.model or status.outputs.gguf or status.outputs.trackio):
        out = status.outputs
        lines += ["", "Outputs:"]
        pairs = [("Model", out.model), *(("GGUF", url) for url in out.gguf), ("Trackio", out.trackio)]
        lines += _fields(pairs, indent="  ")
    return "\n".join(lines) + "\n"


def render_output(obj: dict[str, Any], output: str, now: datetime | None = None) -> str:
    """The resource as `text` (:func:`render_status`), `summary` (:func:`summary_line`), `json` or `yaml`.

    Raises
    ------
    ValueError
        For another output format.
    """
    if output == "json":
        return json.dumps(obj, indent=2, sort_keys=False) + "\n"
    if output == "yaml":
        return str(yaml.safe_dump(obj, sort_keys=False))
    if output == "text":
        return render_status(obj, now)
    if output == "summary":
        return summary_line(parse_status(obj), _job_name(obj), _method(obj)) + "\n"
    raise ValueError(f"unknown output format {output!r}: use one of {', '.join(OUTPUTS)}")


def bar(fraction: float, width: int) -> str:
    """A text progress bar `[#####.....]` of `width` cells inside the brackets."""
    width = max(1, width)
    filled = min(width, max(0, round(fraction * width)))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def watch_line(status: FineTuneJobStatus, bar_width: int = 0) -> str:
    """One line for `ftjob watch`: phase, step/total, loss, tokens/s and ETA (and a bar when `bar_width`).

    Parameters
    ----------
    status
        The job's status.
    bar_width
        Cells of the progress bar; 0 shows no bar (plain lines for logs and pipes).
    """
    parts = [status.phase.value.ljust(10)]
    p = status.progress
    if p is not None and (p.step or p.total_steps):
        if bar_width and p.total_steps:
            parts.append(bar(p.step / p.total_steps, bar_width))
        parts.append(f"step {progress_summary(p)}")
        if p.reward is not None:
            parts.append(f"reward {format_number(p.reward)}")
        else:
            parts.append(f"loss {format_number(p.loss)}")
        if p.reward_accuracy is not None:
            parts.append(f"acc {p.reward_accuracy:.0%}")
        if p.tokens_per_second is not None:
            parts.append(f"{p.tokens_per_second:,.0f} tok/s")
        if p.eta_seconds is not None and status.phase == Phase.RUNNING:
            parts.append(f"ETA {format_duration(p.eta_seconds)}")
    elif status.message:
        parts.append(status.message)
    return "  ".join(parts).rstrip()
