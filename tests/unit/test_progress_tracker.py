"""The operator's progress parser: runtime lines in, status progress, outputs and warnings out."""

from __future__ import annotations

import io
import math

from finetune_operator.api.status import Progress
from finetune_operator.lifecycle.tracker import ProgressTracker, TrackerState, WarningReason
from finetune_training.events import EventKind, RuntimeEvent, emit


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Runtime:
    """Writes event lines as `ftjob train` does, with strictly increasing event times."""

    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def line(self, kind: EventKind, **fields: object) -> str:
        self.t += 1.0
        out = io.StringIO()
        emit(RuntimeEvent.model_validate({"ftjob": kind, "time": self.t, **fields}), out)
        return out.getvalue()

    def step(self, step: int, loss: float, tps: float = 1000.0, total: int = 100) -> str:
        return self.line(
            EventKind.PROGRESS,
            step=step,
            total_steps=total,
            epoch=step / total,
            loss=loss,
            learning_rate=2e-5,
            tokens_per_second=tps,
            eta_seconds=float(total - step),
        )


def reasons(tracker: ProgressTracker) -> list[str]:
    return [w.reason.value for w in tracker.warnings()]


def test_progress_fields_from_mixed_log_stream() -> None:
    rt = Runtime()
    tracker = ProgressTracker(clock=FakeClock())
    noise = "2025-01-01 INFO transformers loading weights\nTraceback-looking line {not json}\n"
    events = tracker.feed(
        noise + rt.line(EventKind.START, step=0, total_steps=200, trackio_url="file:///t.db")
    )
    assert [e.ftjob for e in events] == [EventKind.START]
    events = tracker.feed("[pod/abc] " + rt.step(84, 1.25, tps=512.3456, total=200))
    assert len(events) == 1
    p = tracker.progress
    assert (p.step, p.total_steps, p.loss, p.learning_rate) == (84, 200, 1.25, 2e-5)
    assert p.epoch == 0.42
    assert p.percent == "42%"
    assert p.tokens_per_second == 512.35
    assert p.eta_seconds == 116
    assert p.trackio_url == "file:///t.db"
    assert p.updated_time is not None and p.updated_time.endswith("Z")
    assert tracker.outputs.trackio == "file:///t.db"
    assert tracker.running and not tracker.finished


def test_published_done_and_error() -> None:
    rt = Runtime()
    tracker = ProgressTracker(clock=FakeClock())
    tracker.feed(rt.step(10, 0.9, total=10))
    tracker.feed(rt.line(EventKind.PUBLISHED, artifact="model", url="https://hub/m"))
    tracker.feed(rt.line(EventKind.PUBLISHED, artifact="gguf", url="https://hub/m/q4.gguf"))
    tracker.feed(rt.line(EventKind.PUBLISHED, artifact="gguf", url="https://hub/m/q8.gguf"))
    tracker.feed(rt.line(EventKind.DONE, step=10, total_steps=10, loss=1.1, url="https://hub/m"))
    assert tracker.outputs.model == "https://hub/m"
    assert tracker.outputs.gguf == ["https://hub/m/q4.gguf", "https://hub/m/q8.gguf"]
    assert tracker.done is not None and tracker.error is None
    assert tracker.progress.percent == "100%" and tracker.progress.eta_seconds == 0
    assert tracker.progress.loss == 0.9  # the last step's loss, not the run average
    assert tracker.finished and not tracker.running

    failed = ProgressTracker(clock=FakeClock())
    failed.feed(rt.line(EventKind.ERROR, reason="OutOfMemory", message="CUDA out of memory"))
    assert failed.error is not None and failed.error.reason == "OutOfMemory"
    assert failed.finished


def test_take_update_is_rate_limited_but_first_and_terminal_are_forced() -> None:
    rt, clock = Runtime(), FakeClock()
    tracker = ProgressTracker(min_interval_seconds=10, clock=clock)
    assert tracker.take_update() is None  # nothing seen yet
    tracker.feed(rt.step(1, 2.0))
    first = tracker.take_update()
    assert first is not None and first.step == 1
    tracker.feed(rt.step(2, 1.9))
    clock.advance(5)
    assert tracker.take_update() is None  # too soon
    clock.advance(5)
    update = tracker.take_update()
    assert update is not None and update.step == 2
    assert tracker.take_update() is None  # nothing new
    clock.advance(60)
    assert tracker.take_update() is None  # still nothing new
    tracker.feed(rt.step(3, 1.8))
    clock.advance(1)
    tracker.take_update()  # due: 61 s since the last write
    tracker.feed(rt.step(4, 1.7))
    assert tracker.take_update() is None
    tracker.feed(rt.line(EventKind.DONE, step=100, total_steps=100))
    final = tracker.take_update()
    assert final is not None and final.step == 100 and final.percent == "100%"
    # The returned progress is a copy: later events do not change what was handed out.
    assert isinstance(final, Progress) and final is not tracker.progress


def test_loss_nan_warns_once_until_it_clears() -> None:
    rt = Runtime()
    tracker = ProgressTracker(clock=FakeClock())
    tracker.feed(rt.step(1, 2.0))
    tracker.feed(rt.step(2, math.nan))
    assert tracker.progress.loss is None  # NaN cannot go into Kubernetes JSON
    assert reasons(tracker) == ["LossNaN"]
    tracker.feed(rt.step(3, math.inf))
    assert reasons(tracker) == []  # still the same problem: not raised again
    tracker.feed(rt.step(4, 1.5))
    assert tracker.active_warnings == []
    tracker.feed(rt.step(5, math.nan))
    assert reasons(tracker) == ["LossNaN"]


def test_loss_diverging_rule() -> None:
    rt = Runtime()
    tracker = ProgressTracker(clock=FakeClock())
    for step, loss in enumerate([2.0, 1.5, 1.0, 0.9], start=1):
        tracker.feed(rt.step(step, loss))
    # Threshold: min 0.9 + max(0.9, 0.5) = 1.8. Two high losses are not yet a divergence.
    tracker.feed(rt.step(5, 2.5))
    tracker.feed(rt.step(6, 3.0))
    assert reasons(tracker) == []
    tracker.feed(rt.step(7, 4.0))
    assert reasons(tracker) == ["LossDiverging"]
    assert tracker.active_warnings == [WarningReason.LOSS_DIVERGING]
    tracker.feed(rt.step(8, 5.0))
    assert reasons(tracker) == []  # once until it clears
    tracker.feed(rt.step(9, 1.0))  # back under the threshold: clears
    assert tracker.active_warnings == []


def test_loss_diverging_message_and_single_spike() -> None:
    rt = Runtime()
    tracker = ProgressTracker(clock=FakeClock())
    for step, loss in enumerate([1.0, 0.8, 0.6, 0.5, 3.0, 0.55, 3.0, 0.5], start=1):
        tracker.feed(rt.step(step, loss))
    assert reasons(tracker) == []  # isolated spikes are not a divergence
    for step in (9, 10, 11):
        tracker.feed(rt.step(step, 2.0))
    [warning] = tracker.warnings()
    assert warning.reason == WarningReason.LOSS_DIVERGING
    assert "learningRate" in warning.message


def test_loss_diverging_near_zero_loss_uses_absolute_margin() -> None:
    rt = Runtime()
    tracker = ProgressTracker(clock=FakeClock())
    for step, loss in enumerate([0.02, -0.01, 0.01, 0.0, 0.3, 0.35, 0.4], start=1):
        tracker.feed(rt.step(step, loss))
    assert reasons(tracker) == []  # GRPO-like noise around 0 stays under min + 0.5
    for step in (8, 9, 10):
        tracker.feed(rt.step(step, 0.7))
    assert reasons(tracker) == ["LossDiverging"]


def test_no_progress_after_stall_and_clears_on_next_event() -> None:
    rt, clock = Runtime(), FakeClock()
    tracker = ProgressTracker(stall_seconds=600, clock=clock)
    clock.advance(10_000)
    assert reasons(tracker) == []  # not running yet (queued): silence is expected
    tracker.mark_running()
    clock.advance(599)
    assert reasons(tracker) == []
    clock.advance(1)
    [warning] = tracker.warnings()
    assert warning.reason == WarningReason.NO_PROGRESS and "10 minutes" in warning.message
    clock.advance(600)
    assert reasons(tracker) == []  # once
    tracker.feed(rt.step(1, 1.0))
    assert tracker.active_warnings == []
    clock.advance(600)
    assert reasons(tracker) == ["NoProgress"]


def test_no_progress_not_watched_while_publishing_or_after_done() -> None:
    rt, clock = Runtime(), FakeClock()
    tracker = ProgressTracker(stall_seconds=60, clock=clock)
    tracker.feed(rt.step(100, 1.0, total=100))  # all steps taken: publishing
    clock.advance(3600)
    assert reasons(tracker) == []
    other = ProgressTracker(stall_seconds=60, clock=clock)
    other.feed(rt.step(5, 1.0))
    other.feed(rt.line(EventKind.ERROR, reason="Boom", message="x"))
    clock.advance(3600)
    assert reasons(other) == []


def test_slow_throughput_after_warmup() -> None:
    rt = Runtime()
    tracker = ProgressTracker(estimated_tokens_per_second=1000, clock=FakeClock())
    for step in (1, 2, 3):  # warm-up readings are ignored, however slow
        tracker.feed(rt.step(step, 1.0, tps=10))
    tracker.feed(rt.step(4, 1.0, tps=200))
    tracker.feed(rt.step(5, 1.0, tps=200))
    assert reasons(tracker) == []  # window not full yet
    tracker.feed(rt.step(6, 1.0, tps=200))
    [warning] = tracker.warnings()
    assert warning.reason == WarningReason.SLOW_THROUGHPUT and "20%" in warning.message
    tracker.feed(rt.step(7, 1.0, tps=200))
    assert reasons(tracker) == []
    for step in (8, 9, 10):
        tracker.feed(rt.step(step, 1.0, tps=900))
    assert tracker.active_warnings == []


def test_no_estimate_no_throughput_warning() -> None:
    rt = Runtime()
    tracker = ProgressTracker(clock=FakeClock())
    for step in range(1, 10):
        tracker.feed(rt.step(step, 1.0, tps=1))
    assert reasons(tracker) == []


def test_state_round_trip_survives_restart_without_replays_or_repeat_warnings() -> None:
    rt, clock = Runtime(), FakeClock()
    log: list[str] = []

    def say(line: str) -> None:
        log.append(line)
        tracker.feed(line)

    tracker = ProgressTracker(estimated_tokens_per_second=1000, clock=clock)
    say(rt.line(EventKind.START, step=0, total_steps=100))
    for step in range(1, 8):
        say(rt.step(step, 1.0, tps=100))
    say(rt.line(EventKind.PUBLISHED, artifact="gguf", url="https://hub/q4.gguf"))
    assert reasons(tracker) == ["SlowThroughput"]
    state = tracker.state()
    assert TrackerState.model_validate(state).last_step == 7
    assert set(state) <= set(TrackerState.model_fields) | {
        f.alias for f in TrackerState.model_fields.values() if f.alias
    }
    assert len(str(state)) < 400  # small enough for status

    restored = ProgressTracker.from_state(
        state,
        progress=tracker.progress,
        outputs=tracker.outputs,
        estimated_tokens_per_second=1000,
        clock=clock,
    )
    # The backend's log stream is read again from its beginning: nothing is new.
    assert restored.feed("".join(log)) == []
    assert restored.outputs.gguf == ["https://hub/q4.gguf"]
    assert restored.take_update() is None
    assert reasons(restored) == []
    assert restored.progress.step == 7
    # New lines carry on, and the still slow run does not warn again.
    new = restored.feed(rt.step(8, 1.0, tps=100))
    assert [e.step for e in new] == [8]
    assert reasons(restored) == []
    assert restored.progress.step == 8


def test_resumed_run_after_restart_is_not_a_replay() -> None:
    rt = Runtime()
    tracker = ProgressTracker(clock=FakeClock())
    tracker.feed(rt.step(50, 1.0))
    restored = ProgressTracker.from_state(tracker.state(), progress=tracker.progress, clock=FakeClock())
    # A preempted pod resumed from the step-40 checkpoint: newer lines with smaller steps still count.
    restored.feed(rt.line(EventKind.START, step=40, total_steps=100, resumed_from_step=40))
    restored.feed(rt.step(41, 0.9))
    assert restored.progress.step == 41
    assert restored.take_update() is not None  # `start` is written at once


def test_from_empty_state_is_fresh() -> None:
    tracker = ProgressTracker.from_state({}, clock=FakeClock())
    assert tracker.state() == ProgressTracker(clock=FakeClock()).state()
    assert tracker.progress == Progress()


def test_grpo_and_dpo_report_the_metrics_that_say_how_training_goes() -> None:
    rt = Runtime()
    grpo = ProgressTracker(clock=FakeClock())
    metrics = {
        "reward": 0.1,
        "rewards/format/mean": 0.2,
        "rewards/accuracy/mean": 0.0,
        "rewards/format/std": 1,
    }
    grpo.feed(rt.line(EventKind.PROGRESS, step=5, total_steps=50, loss=0.0001, metrics=metrics))
    metrics = {"reward": 0.6, "rewards/format/mean": 0.9, "rewards/accuracy/mean": 0.3}
    grpo.feed(rt.line(EventKind.PROGRESS, step=10, total_steps=50, loss=0.0002, metrics=metrics))
    p = grpo.progress
    assert (p.reward, p.first_reward) == (0.6, 0.1)
    assert p.rewards == {"format": 0.9, "accuracy": 0.3}
    assert p.reward_accuracy is None

    dpo = ProgressTracker(clock=FakeClock())
    first = {"rewards/accuracies": 0.5, "rewards/margins": 0.0, "rewards/chosen": 0.0}
    dpo.feed(rt.line(EventKind.PROGRESS, step=1, total_steps=20, loss=0.6931, metrics=first))
    later = {"rewards/accuracies": 0.875, "rewards/margins": 0.42, "rewards/chosen": 0.3}
    dpo.feed(rt.line(EventKind.PROGRESS, step=2, total_steps=20, loss=0.55, metrics=later))
    p = dpo.progress
    assert (p.loss, p.first_loss) == (0.55, 0.6931)
    assert (p.reward_accuracy, p.reward_margin, p.reward, p.rewards) == (0.875, 0.42, None, None)


def test_elapsed_training_time_adds_up_over_attempts_and_survives_a_restart() -> None:
    rt = Runtime()
    tracker = ProgressTracker(clock=FakeClock())
    tracker.feed(rt.line(EventKind.START, step=0, total_steps=100))  # t0
    rt.t += 99  # 100 s of training
    tracker.feed(rt.line(EventKind.PROGRESS, step=10, total_steps=100, loss=2.0))
    assert tracker.progress.elapsed_seconds == 100.0
    # The operator restarts, then a second attempt resumes an hour later and trains 50 s more.
    again = ProgressTracker.from_state(tracker.state(), progress=tracker.progress, clock=FakeClock())
    rt.t += 3600
    again.feed(rt.line(EventKind.START, step=10, total_steps=100, resumed_from_step=10))
    rt.t += 49
    again.feed(rt.line(EventKind.PROGRESS, step=20, total_steps=100, loss=1.5))
    assert again.progress.elapsed_seconds == 150.0
    assert again.progress.first_loss == 2.0  # the first attempt's first loss is kept


def test_start_event_says_how_rows_became_steps() -> None:
    rt = Runtime()
    tracker = ProgressTracker(clock=FakeClock())
    rows = {"datasetRows": 300, "examples": 176, "packed": True, "examplesPerStep": 16, "maxLength": 1024}
    tracker.feed(rt.line(EventKind.START, step=0, total_steps=22, rows=rows))
    r = tracker.progress.rows
    assert r is not None and (r.dataset_rows, r.examples, r.packed, r.examples_per_step) == (
        300,
        176,
        True,
        16,
    )
    assert tracker.progress.wire()["rows"]["datasetRows"] == 300
