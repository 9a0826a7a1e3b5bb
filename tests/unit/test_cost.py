"""Spend from the backend's own times, and dollars as people read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from finetune_operator.api.status import PlanSummary
from finetune_operator.backends.base import WorkState, WorkStatus
from finetune_operator.lifecycle.cost import format_usd, observe, over_budget
from finetune_training.plan import PeftMode

PLAN = PlanSummary(
    backend="HFJobs",
    target="HFJobs/a10g-large",
    peft=PeftMode.LORA,
    memory_gib=10,
    estimated_hours=1,
    estimatedCostUSD=1.5,
    hourlyPriceUSD=1.5,
    suggested_timeout="2h",
    reason="test",
)
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount", "shown"),
    [(0, "$0.00"), (12.345, "$12.35"), (1234.5, "$1,234.50"), (0.01, "$0.01"), (0.0042, "$0.0042"),
     (0.000123, "$0.00012"), (0.00000123, "$1.2e-06")],
)  # fmt: skip
def test_costs_below_a_cent_keep_their_digits(amount: float, shown: str) -> None:
    assert format_usd(amount) == shown


def test_spend_runs_from_the_backends_start_and_stops_at_its_end() -> None:
    queued = observe(None, PLAN, 1, WorkStatus(state=WorkState.QUEUED), T0)
    assert queued.actual_usd == 0 and queued.started_time is None  # waiting for hardware costs nothing
    running = observe(
        queued, PLAN, 1, WorkStatus(state=WorkState.RUNNING, started_at=T0), T0 + timedelta(hours=1)
    )
    assert running.running_seconds == 3600 and running.actual_usd == 1.5
    ended = WorkStatus(state=WorkState.SUCCEEDED, started_at=T0, ended_at=T0 + timedelta(hours=2))
    done = observe(running, PLAN, 1, ended, T0 + timedelta(hours=9))
    assert done.running_seconds == 7200 and done.actual_usd == 3.0, "time after the end is not charged"


def test_every_attempt_adds_to_the_spend() -> None:
    first = WorkStatus(state=WorkState.CANCELLED, started_at=T0, ended_at=T0 + timedelta(minutes=30))
    report = observe(None, PLAN, 1, first, T0 + timedelta(hours=1))
    second = WorkStatus(state=WorkState.RUNNING, started_at=T0 + timedelta(hours=2))
    report = observe(report, PLAN, 2, second, T0 + timedelta(hours=2, minutes=30))
    assert report.earlier_seconds == 1800 and report.running_seconds == 3600 and report.actual_usd == 1.5
    assert report.attempt == 2 and report.ended_time is None


def test_the_guard_keeps_the_stops_own_time_in_hand() -> None:
    report = observe(
        None, PLAN, 1, WorkStatus(state=WorkState.RUNNING, started_at=T0), T0 + timedelta(hours=1)
    )
    assert not over_budget(report, 2.0, margin_seconds=600)  # $1.50 spent + $0.25 for the stop
    assert over_budget(report, 2.0, margin_seconds=1800)  # $1.50 + $0.75: stop now, not after passing $2
