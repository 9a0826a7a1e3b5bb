"""The HF Jobs backend against the stand-in: each attempt is its own HF Job, found by its labels across
listing pages, so a lost status write never leads to a second paid job and a retry never adopts the run
before it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from finetune_operator.backends.base import JobTarget, WorkState
from finetune_operator.backends.hfjobs import HFJobsBackend
from finetune_operator.config import OperatorConfig
from finetune_operator.errors import SpecError
from finetune_training.plan import TrainingPlan
from tests.hub import DEFAULT_TOKEN, HubServer
from tests.integration.hfjobs_world import hfjobs_world

pytestmark = [pytest.mark.hub]


@pytest.fixture
def backend(hub: HubServer) -> HFJobsBackend:
    # The job's command only has to run for a while: this test is about identity, not training.
    config = OperatorConfig(
        hf_endpoint=hub.url,
        trainer_image="python:3.12",
        trainer_command=["python", "-c", "import time; time.sleep(60)"],
        metrics_port=0,
    )
    return HFJobsBackend(config)


def plan(attempt: int, tmp_path: Path) -> TrainingPlan:
    return TrainingPlan.model_validate(
        {
            "job": {"name": "adopt", "namespace": "ns", "uid": "uid-adopt", "attempt": attempt},
            "model": "tester/tiny",
            "dataset": {"name": "tester/data"},
            "method": "SFT",
            "peft": "LoRA",
            "output": {"localDir": str(tmp_path)},
            "tracking": {"project": "p", "runName": "r"},
        }
    )


def target(attempt: int, uid: str = "uid-adopt") -> JobTarget:
    return JobTarget(namespace="ns", name="adopt", uid=uid, attempt=attempt, token=DEFAULT_TOKEN)


def test_each_attempt_is_found_by_its_labels_across_listing_pages(
    hub: HubServer, backend: HFJobsBackend, tmp_path: Path
) -> None:
    first = backend.submit(target(1), plan(1, tmp_path), timeout_seconds=120)
    # Other work of the same FineTuneJob lands after it, so attempt 1 is not on the first page.
    second = backend.submit(target(2), plan(2, tmp_path), timeout_seconds=120)
    for _ in range(3):
        backend.submit(target(1, uid="uid-other"), plan(1, tmp_path), timeout_seconds=120)
    hub.jobs.page_size = 1
    try:
        # The operator restarted after a lost status write: it finds the job instead of submitting again.
        found = backend.find(target(1))
        assert found is not None and found.id == first.id and found.attempt == 1
        again = backend.find(target(2))
        assert again is not None and again.id == second.id
        assert backend.find(target(3)) is None, "a new attempt never adopts an earlier one"
    finally:
        hub.jobs.page_size = 50
        for ref in (first, second):
            backend.cancel(target(ref.attempt or 1), ref)
    hub.jobs.wait_ended("tester", first.id)
    assert backend.poll(target(1), first).state == WorkState.CANCELLED


def test_the_tokens_account_is_looked_up_once_not_on_every_call(
    hub: HubServer, backend: HFJobsBackend, tmp_path: Path
) -> None:
    """The Hub rate-limits `whoami`; finds and submits of many jobs must not each call it."""
    counter = hub.faults.delay(r"^/api/whoami", 0, times=10_000)
    try:
        for attempt in range(1, 6):
            backend.find(target(attempt, uid="uid-whoami"))
        assert counter.hits == 1
    finally:
        hub.faults.clear()


def test_an_account_without_credits_gets_a_reason_to_fix_and_no_job(
    hub: HubServer, backend: HFJobsBackend, tmp_path: Path
) -> None:
    before = len(hub.jobs.list("tester", [], {}))
    refused = hub.faults.add(r"^/api/jobs/tester$", status=402, method="POST")
    try:
        with pytest.raises(SpecError) as caught:
            backend.submit(target(1, uid="uid-broke"), plan(1, tmp_path), timeout_seconds=120)
    finally:
        hub.faults.clear()
    assert refused.hits == 1
    assert caught.value.reason == "HubPaymentRequired" and caught.value.fixable
    assert len(hub.jobs.list("tester", [], {})) == before


@pytest.mark.parametrize("retry_after", [None, 5], ids=["ratelimit-only", "with-retry-after"])
def test_a_rate_limited_whoami_waits_for_the_hubs_reset(hub: HubServer, retry_after: int | None) -> None:
    """The Hub's 429 on `whoami` carries `RateLimit: "api";r=0;t=55`: the job is looked at again after 55 s, not
    after a guess (or a shorter `Retry-After`), and then submitted once."""
    world = hfjobs_world(hub, ["python", "-c", "pass"])
    limited = hub.faults.rate_limit(r"^/api/whoami", retry_after=retry_after, reset=55)
    world.step()
    assert limited.hits == 1 and world.hub_jobs() == []
    retrying = world.condition("Retrying")
    assert "HTTP 429" in retrying.message and "next in 55s" in retrying.message
    assert world.memory.backoff is not None
    wait = world.memory.backoff.not_before - time.monotonic()
    assert 50 < wait <= 55
    world.later()  # after the reset: the account is looked up, the job submitted
    (job,) = world.hub_jobs()
    assert world.status["backendRef"]["id"] == job.id
    hub.jobs.cancel(job)
