"""How an ended HF Job reads to the operator when the Hub words its outcome as the real Jobs API does: an ERROR
says only `Job failed with exit code: N`, a timeout says so in its own words, and a job without a timeout is
stopped after 30 minutes; a job waiting for hardware says why."""

from __future__ import annotations

import pytest

from finetune_operator.backends.base import WorkState
from tests.hub import HubServer
from tests.integration.hfjobs_world import RUNTIME_ERROR, hfjobs_world

pytestmark = [pytest.mark.hub]


def test_the_runtimes_own_error_wins_over_the_hubs_exit_code(hub: HubServer) -> None:
    world = hfjobs_world(hub, ["python", "-c", RUNTIME_ERROR])
    world.until("Failed")
    (job,) = world.hub_jobs()
    assert job.message == "Job failed with exit code: 1"
    failed = world.condition("Failed")
    assert (failed.reason, failed.message) == ("DatasetInvalid", "row 3 has no `text`")


def test_an_exit_without_a_runtime_error_is_retried_with_the_hubs_message(hub: HubServer) -> None:
    world = hfjobs_world(hub, ["python", "-c", "import sys; print('Killed'); sys.exit(137)"])
    world.until(
        lambda: world.condition("Submitted") is not None and world.condition("Submitted").status == "False"
    )
    ended = world.condition("Submitted")
    assert ended.reason == "AttemptEnded"  # no runtime error: attempt 2 resumes from the last checkpoint
    assert "HFJobError: Job failed with exit code: 137" in ended.message
    for job in world.hub_jobs():
        hub.jobs.cancel(job)


def test_a_timed_out_job_fails_as_a_timeout_and_is_not_retried(hub: HubServer) -> None:
    world = hfjobs_world(hub, ["python", "-c", "import time; time.sleep(60)"], budget={"timeout": "2s"})
    world.until("Failed", timeout=90)
    (job,) = world.hub_jobs()
    assert job.message == "Job timed out after 2s"
    assert world.condition("Failed").reason == "Timeout"


def test_a_timeout_is_told_by_how_long_the_job_ran_whatever_the_hub_calls_it(hub: HubServer) -> None:
    hub.jobs.timeout_message = "Job stopped"
    try:
        world = hfjobs_world(hub, ["python", "-c", "import time; time.sleep(60)"], budget={"timeout": "2s"})
        world.until("Failed", timeout=90)
    finally:
        hub.jobs.timeout_message = "Job timed out after {limit}"
    assert world.condition("Failed").reason == "Timeout"
    assert len(world.hub_jobs()) == 1


def test_a_submitted_job_carries_its_own_timeout_not_the_hubs_30_minute_default(hub: HubServer) -> None:
    world = hfjobs_world(hub, ["python", "-c", "import time; time.sleep(60)"])
    world.step()
    (job,) = world.hub_jobs()
    assert job.spec.timeout_seconds == 2 * 3600  # the plan's suggested timeout
    hub.jobs.cancel(job)


def test_a_job_waiting_for_hardware_is_queued_with_the_hubs_reason(hub: HubServer) -> None:
    hub.jobs.start_delay_s = 60.0  # SCHEDULING for a while
    try:
        world = hfjobs_world(hub, ["python", "-c", "pass"])
        world.step()
        world.later()
    finally:
        hub.jobs.start_delay_s = 0.0
    (job,) = world.hub_jobs()
    work = world.backend.poll(world.target(), world.backend.find(world.target()))
    assert (work.state, work.reason) == (WorkState.QUEUED, "Scheduling")
    assert world.phase == "Queued"
    assert world.status["message"] == work.message == "Waiting for cpu-basic hardware to become available"
    hub.jobs.cancel(job)
