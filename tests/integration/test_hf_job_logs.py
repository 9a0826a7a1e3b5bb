"""Reading a running HF Job's logs through the real client and the stand-in's SSE stream.

The Jobs API's non-following stream ends only after a pause in the output, so a job that logs steadily
keeps it open until the job ends; the operator's monitoring pass and `ftjob logs` must return anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from huggingface_hub import HfApi, JobStage

from finetune_operator.hub import hf_job_log_lines
from tests.hub import DEFAULT_TOKEN, client_config, start_hub

pytestmark = pytest.mark.hub

NS = "tester"
CHATTY = "import itertools, time\nfor i in itertools.count():\n    print(i, flush=True); time.sleep(0.05)\n"


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
