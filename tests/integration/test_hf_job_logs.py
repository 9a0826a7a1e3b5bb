"""Reading a running HF Job's logs through the real client and the stand-in's SSE stream.

The Jobs API's non-following stream ends only after a pause in the output, so a job that logs steadily
keeps it open until the job ends; the operator's monitoring pass and `ftjob logs` must return anyway.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from huggingface_hub import HfApi, JobStage

from finetune_operator.backends.base import JobTarget, WorkRef
from finetune_operator.backends.hfjobs import HFJobsBackend
from finetune_operator.config import OperatorConfig
from finetune_operator.hub import hf_job_log_lines
from finetune_training.plan import TrainingPlan
from tests.hub import DEFAULT_TOKEN, client_config, start_hub
from tests.integration.hfjobs_world import RUNTIME_ERROR, hfjobs_world

pytestmark = pytest.mark.hub

NS = "tester"
CHATTY = "import itertools, time\nfor i in itertools.count():\n    print(i, flush=True); time.sleep(0.05)\n"
PLAN = TrainingPlan.model_validate(
    {
        "job": {"name": "chatty", "namespace": "ns", "uid": "uid-chatty"},
        "model": "tester/tiny",
        "dataset": {"name": "tester/data"},
        "method": "SFT",
        "peft": "LoRA",
        "output": {"localDir": "/tmp/out"},
        "tracking": {"project": "p", "runName": "r"},
    }
)


@pytest.fixture(scope="module")
def hub() -> Iterator[Any]:
    with start_hub() as server, client_config(server):
        yield server


@pytest.fixture
def chatty_job(hub: Any) -> Iterator[tuple[HfApi, str]]:
    """A job that prints a numbered line every 50 ms until cancelled."""
    api = HfApi(endpoint=hub.url, token=DEFAULT_TOKEN)
    job = api.run_job(image="python:3.12", command=["python", "-c", CHATTY], namespace=NS)
    try:
        for _ in hf_job_log_lines(api, job.id, NS, follow=True):
            break  # running and logging
        yield api, job.id
    finally:
        api.cancel_job(job_id=job.id, namespace=NS)


def test_a_read_returns_while_the_job_keeps_logging(chatty_job: tuple[HfApi, str]) -> None:
    api, job_id = chatty_job
    lines = list(hf_job_log_lines(api, job_id, NS, budget_s=1.0))
    assert lines and lines[0] == "0"
    assert [int(x) for x in lines] == list(range(len(lines)))  # in order, none lost
    assert api.inspect_job(job_id=job_id, namespace=NS).status.stage == JobStage.RUNNING


def test_tail_starts_from_the_last_lines(chatty_job: tuple[HfApi, str]) -> None:
    api, job_id = chatty_job
    first = list(hf_job_log_lines(api, job_id, NS, budget_s=0.5))
    tailed = list(hf_job_log_lines(api, job_id, NS, tail=3, budget_s=0.5))
    assert int(tailed[0]) >= int(first[-1]) - 2  # started near the end, not at line 0
    assert [int(x) for x in tailed] == list(range(int(tailed[0]), int(tailed[0]) + len(tailed)))


# ---- the backend's reads, when the Hub's log stream lags or breaks off -------------------------------------


@pytest.fixture
def chatty_work(hub: Any) -> Iterator[tuple[HFJobsBackend, JobTarget, WorkRef]]:
    """The chatty job, submitted by the HF Jobs backend and logging."""
    config = OperatorConfig(
        hf_endpoint=hub.url,
        trainer_image="python:3.12",
        trainer_command=["python", "-c", CHATTY],
        metrics_port=0,
    )
    backend = HFJobsBackend(config)
    target = JobTarget(namespace="ns", name="chatty", uid=f"uid-{uuid.uuid4()}", token=DEFAULT_TOKEN)
    ref = backend.submit(target, PLAN, timeout_seconds=300)
    try:
        for _ in backend.logs(target, ref, follow=True):
            break  # running and logging
        yield backend, target, ref
    finally:
        backend.cancel(target, ref)


def test_a_stream_that_breaks_off_ends_the_read_and_the_next_read_goes_on(
    hub: Any, chatty_work: tuple[HFJobsBackend, JobTarget, WorkRef]
) -> None:
    backend, target, ref = chatty_work
    drop = hub.faults.drop_log_stream(after_lines=3, job_id=ref.id)
    cut = list(backend.logs(target, ref, tail=2000))  # no error: the monitor's pass goes on
    assert drop.hits == 1 and 0 < len(cut) <= 3
    later = list(backend.logs(target, ref, tail=2000))
    assert int(later[-1]) > int(cut[-1]) + 3, "the lines after the break are read by the next pass"


def test_a_lagging_stream_does_not_hold_the_monitor(
    hub: Any, chatty_work: tuple[HFJobsBackend, JobTarget, WorkRef]
) -> None:
    backend, target, ref = chatty_work
    lag = hub.faults.lag_log_stream(8.0, job_id=ref.id)
    began = time.monotonic()
    assert list(backend.logs(target, ref, tail=2000)) == []  # the client gives up after 5 s without a byte
    assert lag.hits == 1 and time.monotonic() - began < 7.5
    assert list(backend.logs(target, ref, tail=2000)), "the next pass reads the lines it missed"


@pytest.mark.parametrize("fault", ["lag", "drop"])
def test_the_last_read_of_an_ended_job_is_redone_until_it_has_the_runtimes_error(
    hub: Any, fault: str
) -> None:
    world = hfjobs_world(hub, ["python", "-c", RUNTIME_ERROR])
    world.step()
    (job,) = world.hub_jobs()
    assert hub.jobs.wait_ended("tester", job.id).stage == "ERROR"
    if fault == "lag":
        hit = hub.faults.lag_log_stream(8.0, job_id=job.id)
    else:  # cut before the error event
        hit = hub.faults.drop_log_stream(after_lines=2, job_id=job.id)
    world.later()  # the poll sees ERROR; the log read comes back short
    assert hit.hits == 1 and world.phase != "Failed"
    assert "reading them again" in world.condition("Retrying").message
    world.later()
    failed = world.condition("Failed")
    assert (failed.reason, failed.message) == ("DatasetInvalid", "row 3 has no `text`")
    assert len(world.hub_jobs()) == 1, "an attempt that failed in the runtime is not retried"
