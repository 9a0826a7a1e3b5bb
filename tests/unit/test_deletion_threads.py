"""A job's deletion never waits for a pool that passes can fill: passes blocked on a slow Hub (a burst of new
jobs validating) can hold all of the queue's threads, and a deletion elsewhere still cancels its work and lets
the job go."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import kopf
from kopf._core.actions.invocation import invoke  # kopf's handler dispatch (kopf is pinned)

from finetune_operator.backends.base import WorkState
from tests.unit.test_reconcile import World, world  # noqa: F401 (the fixture)


def test_a_deletion_runs_while_every_worker_thread_is_blocked(world: World) -> None:  # noqa: F811
    from finetune_operator.handlers import jobs as handlers

    world.step()  # submitted: its work must be cancelled on deletion
    world.backend.work().state = WorkState.RUNNING
    world.body["metadata"]["resourceVersion"] = "7"
    release = threading.Event()
    settings = kopf.OperatorSettings()
    settings.execution.executor = ThreadPoolExecutor(2)  # kopf's pool for sync handlers
    for _ in range(2):
        settings.execution.executor.submit(release.wait)  # every thread in a pass that hangs on the Hub

    async def delete() -> None:
        # kopf's own dispatch: a sync handler would queue on the blocked pool.
        memo = kopf.Memo(deps=world.deps, jobs=handlers.WatchedJobs(world.deps, workers=1))
        kwargs = {"body": world.body, "memo": memo, "logger": logging.getLogger("test")}
        await invoke(handlers.on_delete, kwargs=kwargs, settings=settings)

    failures: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(delete())
        except BaseException as exc:
            failures.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=15)
    finished = not runner.is_alive()
    release.set()  # let the blocked pool (and a deletion stuck behind it) go before asserting
    runner.join(timeout=15)
    settings.execution.executor.shutdown()
    assert finished, "the deletion waited for kopf's worker threads"
    assert not failures and world.backend.work().cancelled
