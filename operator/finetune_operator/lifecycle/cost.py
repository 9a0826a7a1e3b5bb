"""What a FineTuneJob's backend work costs: spend so far, and the budget guard that stops a run in time.

Spend is the plan's hourly price times the time the work ran, from the backend's own start and end times
(an HF Job's `started_at`/`finished_at`, a Kubernetes Job's `startTime`/`completionTime`, the Local run's
start and exit), summed over attempts. A run is stopped while `spent + margin` is still within the budget,
where the margin covers the time until the next poll and the runtime's checkpoint push after SIGTERM.
"""

from __future__ import annotations

from datetime import UTC, datetime

from finetune_operator.api.status import CostReport, PlanSummary
from finetune_operator.backends.base import TERMINAL_STATES, WorkStatus

TIMESTAMP = "%Y-%m-%dT%H:%M:%SZ"


def format_usd(amount: float) -> str:
    """Dollars as people read them: cents from $0.01 up, two significant digits below (`$0.0042`)."""
    if amount == 0:
        return "$0.00"
    if abs(amount) >= 0.01:
        return f"${amount:,.2f}"
    return f"${amount:.2g}" if abs(amount) >= 1e-4 else f"${amount:.1e}"


def _stamp(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime(TIMESTAMP) if moment else None


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, TIMESTAMP).replace(tzinfo=UTC)


def observe(
    report: CostReport | None, plan: PlanSummary, attempt: int, work: WorkStatus, now: datetime
) -> CostReport:
    """The cost report after a poll of `attempt`'s work: an attempt the report has not seen yet folds the
    previous attempt's time into `earlierSeconds`."""
    report = (
        report or CostReport.model_validate({"hourlyPriceUSD": plan.hourly_price_usd, "attempt": attempt})
    ).model_copy()
    report.hourly_price_usd = plan.hourly_price_usd
    if report.attempt != attempt:
        report.earlier_seconds = report.running_seconds
        report.attempt, report.started_time, report.ended_time = attempt, None, None
    report.started_time = _stamp(work.started_at) or report.started_time
    if work.state in TERMINAL_STATES:
        # A run that vanished has no end of its own: it ran until it was seen gone.
        report.ended_time = _stamp(work.ended_at) or report.ended_time or _stamp(now)
    live = 0.0
    if report.started_time:
        end = _parse(report.ended_time) if report.ended_time else now
        live = max((end - _parse(report.started_time)).total_seconds(), 0.0)
    report.running_seconds = report.earlier_seconds + live
    report.actual_usd = round(report.hourly_price_usd * report.running_seconds / 3600, 6)
    return report


def over_budget(report: CostReport, max_cost_usd: float, margin_seconds: float) -> bool:
    """Whether the run must stop now to stay within `max_cost_usd` (spend plus the stop's own margin)."""
    if report.hourly_price_usd <= 0:
        return False  # free hardware never spends the budget
    margin = report.hourly_price_usd * margin_seconds / 3600
    return report.actual_usd + margin >= max_cost_usd
