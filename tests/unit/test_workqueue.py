"""The work queue that runs passes: one pass per job at a time, the earliest requested look wins, a look asked
for during a pass follows it, a forgotten job is not looked at again, and one slow job holds up no other."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from finetune_operator.lifecycle.workqueue import WorkQueue


@contextmanager
def running(queue: WorkQueue, *release: threading.Event) -> Iterator[WorkQueue]:
    """The queue's workers, stopped afterwards (after setting `release`, so no blocked pass holds them)."""
    queue.start()
    try:
        yield queue
    finally:
        for event in release:
            event.set()
        queue.stop()


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_earliest_requested_look_wins_and_a_look_is_not_pushed_later() -> None:
    clock = Clock()
    queue = WorkQueue(lambda key: None, workers=1, retry_seconds=5, clock=clock)
    queue.add("a", 60)
    queue.add("a", 10)
    assert queue.due_in("a") == 10
    queue.add("a", 30)
    assert queue.due_in("a") == 10
    assert len(queue) == 1
    queue.forget("a")
    assert queue.due_in("a") is None and len(queue) == 0


def test_a_key_runs_once_at_a_time_and_a_look_asked_for_during_its_pass_follows_it() -> None:
    started, release = threading.Event(), threading.Event()
    passes: list[str] = []
    overlap: list[bool] = []
    active: set[str] = set()

    def handle(key: str) -> float | None:
        overlap.append(key in active)
        active.add(key)
        passes.append(key)
        if len(passes) == 1:
            started.set()
            release.wait(5)
        active.discard(key)
        return None

    with running(WorkQueue(handle, workers=4, retry_seconds=5), release) as queue:
        queue.add("a")
        assert started.wait(5)
        queue.add("a")  # a watch event while its pass runs
        queue.add("a")
        time.sleep(0.2)
        assert passes == ["a"]  # three idle workers, yet no second pass over "a" while the first runs
        release.set()
        assert eventually(lambda: len(passes) == 2)
        time.sleep(0.2)
        assert passes == ["a", "a"] and not any(overlap)  # the two events made one more pass


def test_the_handlers_delay_schedules_the_next_look_and_a_forgotten_key_gets_none() -> None:
    seen: list[str] = []
    queue = WorkQueue(lambda key: seen.append(key) or 60.0, workers=1, retry_seconds=5, clock=Clock())
    with running(queue):
        queue.add("a")
        queue.add("b")
        assert eventually(lambda: len(seen) == 2 and len(queue) == 2)
        assert queue.due_in("a") == 60 and queue.due_in("b") == 60
        queue.forget("b")
        assert queue.due_in("b") is None and len(queue) == 1


def test_a_failing_pass_is_retried_later_and_the_worker_lives_on() -> None:
    calls: list[str] = []

    def handle(key: str) -> float | None:
        calls.append(key)
        if key == "bad":
            raise RuntimeError("boom")
        return None

    queue = WorkQueue(handle, workers=1, retry_seconds=7, clock=Clock())
    with running(queue):
        queue.add("bad")
        queue.add("good")
        assert eventually(lambda: len(calls) == 2)  # the same (only) worker went on after the failure
        assert eventually(lambda: queue.due_in("bad") == 7) and queue.due_in("good") is None


def test_a_slow_pass_holds_up_no_other_job() -> None:
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def handle(key: str) -> float | None:
        if key == "slow":
            started.set()
            release.wait(5)
        done.append(key)
        return None

    with running(WorkQueue(handle, workers=2, retry_seconds=5), release) as queue:
        queue.add("slow")
        assert started.wait(5)
        for key in ("x", "y", "z"):
            queue.add(key)
        assert eventually(lambda: done == ["x", "y", "z"])  # all passed while the slow one still ran


def test_a_key_forgotten_during_its_pass_is_not_looked_at_again() -> None:
    started, release = threading.Event(), threading.Event()

    def handle(key: str) -> float | None:
        started.set()
        release.wait(5)
        return 1.0

    with running(WorkQueue(handle, workers=1, retry_seconds=5), release) as queue:
        queue.add("a")
        assert started.wait(5)
        queue.forget("a")  # deleted while its pass ran
        release.set()
        time.sleep(0.2)
        assert queue.due_in("a") is None and len(queue) == 0
