"""Running jobs' logs are read incrementally: each pass reads what was logged since the last, however much.

Every backend keeps its place in a `LogCursor` (Kubernetes: the kubelet's timestamps; Local: a byte offset; HF
Jobs: a line count), so a burst of more lines between two passes than any tail loses no event, and a long run
costs no more per pass than a short one.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from finetune_operator.api.status import Phase
from finetune_operator.backends.base import JobTarget, LogCursor, WorkRef, WorkState
from finetune_operator.backends.hfjobs import HFJobsBackend
from finetune_operator.backends.local import LocalBackend
from finetune_operator.backends.podlogs import read_since, stamp_ns
from finetune_operator.config import OperatorConfig
from finetune_operator.hub import hf_job_log_lines
from finetune_training.events import EventKind, RuntimeEvent, emit
from tests.unit.test_reconcile import World, world  # noqa: F401  (the fixture)

T0 = 1_780_000_000.0


def event_line(w: World, step: int, **extra: Any) -> str:
    out = io.StringIO()
    event = RuntimeEvent(
        ftjob=EventKind.PROGRESS, step=step, total_steps=10_000, loss=1.0, time=T0 + step, **extra
    )
    emit(event, out, key=w.backend.work().events_key)
    return out.getvalue().rstrip("\n")


# -- the monitor ----------------------------------------------------------------------------------------
def test_a_burst_of_lines_between_two_passes_loses_no_event(world: World) -> None:  # noqa: F811
    world.step()
    work = world.backend.work()
    work.state = WorkState.RUNNING
    work.lines += [event_line(world, 1), *(f"noise {i}" for i in range(3000))]
    world.step()
    assert world.body["status"]["progress"]["step"] == 1
    # An evaluation event, then far more lines than the old 2,000-line tail, before the next pass.
    out = io.StringIO()
    emit(
        RuntimeEvent(ftjob=EventKind.EVALUATION, step=2, loss=0.5, baseline=True, time=T0 + 2),
        out,
        key=work.events_key,
    )
    work.lines += [out.getvalue().rstrip("\n"), *(f"noise {i}" for i in range(5000)), event_line(world, 3)]
    world.step()
    progress = world.body["status"]["progress"]
    assert progress["step"] == 3 and progress["evaluation"]["baseLoss"] == 0.5
    # One cursor for the attempt, moved on by each read; every line read once.
    assert len({id(c) for c in world.backend.cursors}) == 1
    assert world.backend.cursors[-1].lines == len(work.lines)


def test_a_new_attempt_reads_its_own_log_from_its_beginning(world: World) -> None:  # noqa: F811
    world.step()
    work = world.backend.work()
    work.state = WorkState.RUNNING
    work.lines += [event_line(world, 1)]
    world.step()
    first = world.backend.cursors[-1]
    work.state, work.reason = WorkState.FAILED, "ProcessFailed"
    world.step()  # attempt 2 is due
    world.later()
    assert world.phase == Phase.QUEUED and world.body["status"]["attempts"] == 2
    second = world.backend.work(2)
    second.state = WorkState.RUNNING
    world.later()
    assert world.backend.cursors[-1] is not first and world.backend.cursors[-1].work_id == second.ref.id


# -- Local: a byte offset -------------------------------------------------------------------------------
def test_local_reads_from_its_offset_and_waits_for_a_whole_line(tmp_path: Path) -> None:
    backend = LocalBackend(OperatorConfig(enabled_backends=[], metrics_port=0, local_workdir=str(tmp_path)))
    target = JobTarget(namespace="ns", name="demo", uid="u1")
    folder = backend.folder(target)
    folder.mkdir(parents=True)
    log = folder / "train.log"
    ref = WorkRef(kind="Process", id=folder.name, url=log.as_uri(), attempt=1)
    log.write_text("one\ntwo\nthr")
    cursor = LogCursor(work_id=ref.id)
    assert list(backend.logs(target, ref, cursor=cursor)) == ["one", "two"]
    with log.open("a") as fh:
        fh.write("ee\nfour\nfi")
    assert list(backend.logs(target, ref, cursor=cursor)) == ["three", "four"]
    assert list(backend.logs(target, ref, cursor=cursor)) == []
    (folder / "exit_code").write_text("0")
    assert list(backend.logs(target, ref, cursor=cursor)) == ["fi"]  # the run ended: its last line counts
    assert cursor.offset == log.stat().st_size


# -- Kubernetes: the kubelet's timestamps ---------------------------------------------------------------
def stamp(seconds: float, nanos: int = 0) -> str:
    whole = datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{nanos:09d}Z" if nanos else f"{whole}Z"


class FakeKubelet:
    """`read_namespaced_pod_log` as the kubelet answers it: `sinceSeconds` back from its own clock (which may
    be skewed from the operator's), `timestamps`, `limitBytes`."""

    def __init__(self, skew: float = 0.0) -> None:
        self.now = T0  # the operator's wall clock and monotonic clock, one fake
        self.skew = skew
        self.pods: dict[str, list[tuple[int, str]]] = {}
        self.calls: list[dict[str, Any]] = []

    def log(self, pod: str, text: str, *, at: float | None = None, nanos: int = 0) -> None:
        when = self.now + self.skew if at is None else at
        self.pods.setdefault(pod, []).append((int(when) * 1_000_000_000 + nanos, text))

    def clock(self) -> float:
        return self.now

    def read_namespaced_pod_log(self, name: str, namespace: str, **options: Any) -> str:
        self.calls.append(options)
        if name not in self.pods:
            raise ApiException(status=404)
        assert options.get("timestamps") is True
        since = options.get("since_seconds")
        start = None if since is None else (self.now + self.skew - since) * 1e9
        out = ""
        for ns, text in self.pods[name]:
            if start is not None and ns < start:
                continue
            seconds, nanos = divmod(ns, 1_000_000_000)
            out += f"{stamp(seconds, nanos)} {text}\n"
        limit = options.get("limit_bytes")
        return out[:limit] if limit else out


def test_timestamps_parse_to_nanoseconds() -> None:
    assert (
        stamp_ns("2026-01-02T03:04:05Z") == int(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()) * 10**9
    )
    assert stamp_ns("2026-01-02T03:04:05.5Z") == stamp_ns("2026-01-02T03:04:05Z") + 500_000_000  # type: ignore[operator]
    assert stamp_ns("2026-01-02T05:04:05.000000001+02:00") == stamp_ns("2026-01-02T03:04:05Z") + 1  # type: ignore[operator]
    assert stamp_ns("not a time") is None


@pytest.mark.parametrize("skew", [0.0, -300.0, 300.0])
def test_each_read_yields_only_new_lines_whatever_the_clock_skew(skew: float) -> None:
    kubelet = FakeKubelet(skew=skew)
    cursor = LogCursor(work_id="j", pod="p")
    for i in range(3):
        kubelet.log("p", f"a{i}")
    assert list(read_since(kubelet, "ns", "p", cursor, clock=kubelet.clock)) == ["a0", "a1", "a2"]  # type: ignore[arg-type]
    assert "since_seconds" not in kubelet.calls[-1]  # a new cursor reads the whole log
    kubelet.now += 60
    kubelet.log("p", "b0")
    kubelet.log("p", "b1")
    assert list(read_since(kubelet, "ns", "p", cursor, clock=kubelet.clock)) == ["b0", "b1"]  # type: ignore[arg-type]
    assert kubelet.calls[-1]["since_seconds"] <= 60 + 11  # a window, not the whole log
    kubelet.now += 1
    assert list(read_since(kubelet, "ns", "p", cursor, clock=kubelet.clock)) == []  # type: ignore[arg-type]


def test_lines_sharing_a_timestamp_are_each_read_once() -> None:
    kubelet = FakeKubelet()
    cursor = LogCursor(work_id="j", pod="p")
    kubelet.log("p", "x", nanos=7)
    kubelet.log("p", "x", nanos=7)
    assert list(read_since(kubelet, "ns", "p", cursor, clock=kubelet.clock)) == ["x", "x"]  # type: ignore[arg-type]
    kubelet.log("p", "x", nanos=7)  # a third line in the same nanosecond, after the read
    kubelet.log("p", "y", nanos=8)
    assert list(read_since(kubelet, "ns", "p", cursor, clock=kubelet.clock)) == ["x", "y"]  # type: ignore[arg-type]


def test_a_read_cut_by_the_byte_limit_goes_on_from_where_it_stopped() -> None:
    kubelet = FakeKubelet()
    cursor = LogCursor(work_id="j", pod="p")
    for i in range(100):
        kubelet.log("p", f"line {i:03d}", at=T0 - 100 + i)
    lines = read_since(kubelet, "ns", "p", cursor, clock=kubelet.clock, wall=kubelet.clock, limit_bytes=400)  # type: ignore[arg-type]
    got = list(lines)
    assert got == [f"line {i:03d}" for i in range(100)]
    assert len(kubelet.calls) > 5  # several bounded reads, no line lost at a cut


def test_a_cursor_stopped_early_reads_the_rest_next_time() -> None:
    kubelet = FakeKubelet()
    cursor = LogCursor(work_id="j", pod="p")
    for i in range(5):
        kubelet.log("p", f"l{i}", at=T0 - 100 + i)
    lines = read_since(kubelet, "ns", "p", cursor, clock=kubelet.clock)  # type: ignore[arg-type]
    assert [next(lines), next(lines)] == ["l0", "l1"]
    lines.close()
    kubelet.now += 600  # long after: the window still reaches back to the lines not yet consumed
    assert list(read_since(kubelet, "ns", "p", cursor, clock=kubelet.clock)) == ["l2", "l3", "l4"]  # type: ignore[arg-type]


def test_a_pod_not_started_or_gone_reads_as_nothing() -> None:
    kubelet = FakeKubelet()
    assert list(read_since(kubelet, "ns", "gone", LogCursor(work_id="j", pod="gone"))) == []  # type: ignore[arg-type]


def test_the_job_is_read_on_from_the_cursors_pod_into_the_pod_that_replaced_it() -> None:
    from finetune_operator.backends.kubernetes import KubernetesBackend

    kubelet = FakeKubelet()
    backend = KubernetesBackend.__new__(KubernetesBackend)
    backend.core = kubelet  # type: ignore[assignment]
    cursor = LogCursor(work_id="j")
    kubelet.log("old", "o0")
    assert list(backend._logs_after("ns", ["old"], cursor)) == ["o0"]
    kubelet.now += 30
    kubelet.log("old", "o1 (its last words)")
    kubelet.log("new", "n0")
    assert list(backend._logs_after("ns", ["old", "new"], cursor)) == ["o1 (its last words)", "n0"]
    assert cursor.pod == "new"
    assert list(backend._logs_after("ns", ["new"], cursor)) == []


# -- HF Jobs: a line count ------------------------------------------------------------------------------
class FakeJobsApi:
    token = "hf_x"

    def __init__(self) -> None:
        self.lines: list[str] = []

    def fetch_job_logs(self, **_: Any) -> Iterator[str]:
        yield from list(self.lines)


def test_hf_jobs_skips_the_lines_it_has_read_and_the_skipped_ones_cost_no_budget() -> None:
    api = FakeJobsApi()
    api.lines = [f"l{i}" for i in range(5)]
    assert list(hf_job_log_lines(api, "id", "ns", skip=3, budget_s=0.0)) == ["l3"]  # type: ignore[arg-type]
    backend = HFJobsBackend(OperatorConfig(enabled_backends=[], metrics_port=0))
    backend._api = lambda target: api  # type: ignore[method-assign]
    target = JobTarget(namespace="ns", name="demo", uid="u1", token="hf_x")
    ref = WorkRef(kind="HFJob", id="id", namespace="ns", attempt=1)
    cursor = LogCursor(work_id="id")
    assert list(backend.logs(target, ref, cursor=cursor)) == [f"l{i}" for i in range(5)]
    api.lines += ["l5", "l6"]
    assert list(backend.logs(target, ref, cursor=cursor)) == ["l5", "l6"] and cursor.lines == 7
