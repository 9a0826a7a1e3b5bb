"""Submitting an HF Job when the Hub's job listing lags its writes: a lost `run_job` answer, or a lost status
write, is followed by a label lookup that may not show the job yet; neither may lead to a second paid job."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hub import HubServer
from tests.integration.hfjobs_world import hfjobs_world

pytestmark = [pytest.mark.hub]

SLEEP = ["python", "-c", "import time; time.sleep(60)"]


@pytest.fixture(autouse=True)
def _lagging_listing(hub: HubServer) -> Iterator[None]:
    hub.jobs.listing_lag_s = 3600.0  # a new job stays off `list_jobs` until the test lets it show
    yield
    hub.jobs.listing_lag_s = 0.0
    hub.faults.clear()


def test_a_lost_run_job_answer_is_waited_for_not_submitted_again(hub: HubServer) -> None:
    world = hfjobs_world(hub, SLEEP)
    lost = hub.faults.lose_response(r"^/api/jobs/tester$", status=502, method="POST")
    world.step()  # the Hub creates the job; the operator sees a 502
    assert lost.hits == 1 and len(world.hub_jobs()) == 1
    assert world.condition("Retrying").status == "True"
    for _ in range(3):  # later passes look the job up by its labels; the listing does not show it yet
        world.later()
    assert len(world.hub_jobs()) == 1, "a second paid job was submitted"
    assert world.status.get("backendRef") is None
    assert "was lost" in world.condition("Retrying").message

    hub.jobs.listing_lag_s = 0.0  # the listing catches up: the job is adopted, not submitted again
    world.later()
    (job,) = world.hub_jobs()
    assert world.status["backendRef"]["id"] == job.id
    assert world.condition("Submitted").reason == "Adopted"
    hub.jobs.cancel(job)


def test_a_lost_status_write_adopts_the_job_while_the_listing_lags(hub: HubServer) -> None:
    world = hfjobs_world(hub, SLEEP)
    world.step()
    (job,) = world.hub_jobs()
    del world.body["status"]  # the status write after the submit never reached the API server
    world.later()
    assert [j.id for j in world.hub_jobs()] == [job.id]
    assert world.status["backendRef"]["id"] == job.id
    hub.jobs.cancel(job)


def test_a_submit_the_hub_refused_is_retried_at_once(hub: HubServer) -> None:
    world = hfjobs_world(hub, SLEEP)
    refused = hub.faults.add(r"^/api/jobs/tester$", status=429, method="POST")
    world.step()
    assert refused.hits == 1 and world.hub_jobs() == []
    world.later()  # a 429 created nothing: no wait for the listing
    (job,) = world.hub_jobs()
    assert world.status["backendRef"]["id"] == job.id
    hub.jobs.cancel(job)
