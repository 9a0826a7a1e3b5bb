"""Which FineTuneJobs the timer looks at: waiting jobs cost nothing per tick when nothing but a spec edit can
move them (the update handler sees edits at once)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize(
    ("status", "ticks"),
    [
        ({}, True),  # new: validate and plan
        ({"phase": "Blocked"}, True),  # the world may fix it: re-checked on the bounded timer
        ({"phase": "Running", "backendRef": {"kind": "Job", "id": "j"}}, True),
        ({"phase": "Suspended"}, False),  # planned, never run: only `suspend: false` moves it
        ({"phase": "Suspended", "backendRef": {"kind": "Job", "id": "j"}}, True),  # an attempt is stopping
        ({"phase": "Succeeded"}, False),
        ({"phase": "Failed"}, False),
    ],
)
def test_the_timer_skips_terminal_and_never_run_suspended_jobs(status: dict[str, Any], ticks: bool) -> None:
    # Imported here, not at collection: the handlers fix the timer's period from the environment when
    # first imported, and the e2e tests in the same session set a 1 s period before starting the operator.
    from finetune_operator.handlers.jobs import _active

    assert _active(status) is ticks  # type: ignore[arg-type]
