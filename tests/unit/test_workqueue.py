"""The work queue that runs passes: one pass per job at a time, the earliest requested look wins, a look asked
for during a pass follows it, a forgotten job is not looked at again, and one slow job holds up no other."""

from __future__ import annotations

import threading
import time

from finetune_operator.lifecycle.workqueue import WorkQueue


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
    running = threading.Event()
    release = threading.Event()
    passes: list[str] = []
    overlap: list[bool] = []
    active: set[str] = set()

    def handle(key: str) -> float | None:
        overlap.append(key in active)
        active.add(key)
        passes.append(key)
        if len(passes) == 1:
            running.set()
            release.wait(5)
        active.discard(key)
        return None

    queue = WorkQueue(handle, workers=4, retry_seconds=5)
    queue.start()
    try:
        queue.add("a")
        assert running.wait(5)
        queue.add("a")  # a watch event while its pass runs
        queue.add("a")
        time.sleep(0.2)
        assert passes == ["a"]  # three idle workers, yet no second pass over "a" while the first runs
        release.set()
        deadline = time.monotonic() + 5
        while len(passes) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        assert passes == ["a", "a"] and not any(overlap)  # the two events made one more pass
    finally:
        release.set()
        queue.stop()


def test_the_handlers_delay_schedules_the_next_look_and_a_forgotten_key_gets_none() -> None:
    clock = Clock()
    seen: list[str] = []
    queue = WorkQueue(lambda key: seen.append(key) or 60.0, workers=1, retry_seconds=5, clock=clock)
    queue.start()
    try:
        queue.add("a")
        queue.add("b")
        deadline = time.monotonic() + 5
        while (len(seen) < 2 or len(queue) < 2) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(seen) == ["a", "b"]
        assert queue.due_in("a") == 60 and queue.due_in("b") == 60
        queue.forget("b")
        assert queue.due_in("b") is None and len(queue) == 1
    finally:
        queue.stop()


def test_a_failing_pass_is_retried_later_and_the_worker_lives_on() -> None:
    clock = Clock()
    calls: list[str] = []

    def handle(key: str) -> float | None:
        calls.append(key)
        if key == "bad":
            raise RuntimeError("boom")
        return None

    queue = WorkQueue(handle, workers=1, retry_seconds=7, clock=clock)
    queue.start()
    try:
        queue.add("bad")
        queue.add("good")
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        assert sorted(calls) == ["bad", "good"]  # the same (only) worker went on after the failure
        assert queue.due_in("bad") == 7 and queue.due_in("good") is None
    finally:
        queue.stop()


def test_a_slow_pass_holds_up_no_other_job() -> None:
    slow_started = threading.Event()
    release = threading.Event()
    done: list[str] = []

    def handle(key: str) -> float | None:
        if key == "slow":
            slow_started.set()
            release.wait(5)
        done.append(key)
        return None

    queue = WorkQueue(handle, workers=2, retry_seconds=5)
    queue.start()
    try:
        queue.add("slow")
        assert slow_started.wait(5)
        for key in ("x", "y", "z"):
            queue.add(key)
        deadline = time.monotonic() + 5
        while len(done) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert done == ["x", "y", "z"]  # all passed while the slow one still ran
    finally:
        release.set()
        queue.stop()


def test_a_key_forgotten_during_its_pass_is_not_looked_at_again() -> None:
    started = threading.Event()
    release = threading.Event()

    def handle(key: str) -> float | None:
        started.set()
        release.wait(5)
        return 1.0

    queue = WorkQueue(handle, workers=1, retry_seconds=5)
    queue.start()
    try:
        queue.add("a")
        assert started.wait(5)
        queue.forget("a")  # deleted while its pass ran
        release.set()
        time.sleep(0.2)
        assert queue.due_in("a") is None and len(queue) == 0
    finally:
        release.set()
        queue.stop()
