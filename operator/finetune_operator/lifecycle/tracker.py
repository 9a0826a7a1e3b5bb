"""One progress parser for every backend: runtime event lines in, status progress and warnings out.

The tracker is fed raw log lines (pod logs, HF Jobs server-sent events, a local process's file); only
`finetune_training.events` lines count. It keeps the job's :class:`Progress` and :class:`Outputs`,
hands out progress at a bounded rate (:meth:`ProgressTracker.take_update`) so status writes stay cheap,
and raises each warning a user wants once until its cause clears (:meth:`ProgressTracker.warnings`).

Warning rules
-------------
``LossNaN``
    The latest logged loss is NaN or infinite. Clears on the next finite loss.
``LossDiverging``
    After at least ``DIVERGE_WARMUP`` finite losses, ``DIVERGE_PATIENCE`` consecutive losses lie above
    ``min + max(|min|, DIVERGE_MARGIN)``, where ``min`` is the running minimum of the finite losses: at
    least twice the minimum for a positive loss, and at least 0.5 above it for a loss near or below 0
    (GRPO). Clears when a loss comes back under the threshold.
``NoProgress``
    Training is running (an event was seen or :meth:`ProgressTracker.mark_running` was called; not yet
    ``done``/``error``; steps not yet all taken) and no event arrived for ``stall_seconds``. Publishing
    after the last step is not watched: a GGUF build legitimately prints little. Clears on the next event.
``SlowThroughput``
    With a plan estimate, after ``THROUGHPUT_WARMUP`` tokens/s readings, the mean of the last
    ``THROUGHPUT_WINDOW`` readings is below ``SLOW_RATIO`` (25%) of the estimate. Clears when it recovers.

Restarts: :meth:`ProgressTracker.state` is a small dict the operator keeps in status; a tracker built
with :meth:`ProgressTracker.from_state` skips the lines it has already seen (by the runtime's event time)
when the log stream is read again from its beginning, and does not raise a warning that is still active.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from finetune_operator.api.status import EvaluationProgress, Outputs, Progress
from finetune_training.camel import CamelModel
from finetune_training.events import EventKind, RuntimeEvent, parse_line

DIVERGE_WARMUP = 3
"""Finite losses needed before divergence is judged."""
DIVERGE_PATIENCE = 3
"""Consecutive losses above the threshold that make a divergence."""
DIVERGE_MARGIN = 0.5
"""Least absolute rise above the running minimum that counts (losses near 0, GRPO)."""
THROUGHPUT_WARMUP = 3
"""tokens/s readings ignored at the start (compilation, data loader warm-up, first-step allocations)."""
THROUGHPUT_WINDOW = 3
"""Readings averaged when judging throughput."""
SLOW_RATIO = 0.25
"""Fraction of the plan's tokens/s below which throughput is too slow."""

# TRL's logged metric names (GRPOTrainer and DPOTrainer `_metrics`).
REWARD = "reward"
REWARDS_PREFIX = "rewards/"
MEAN_SUFFIX = "/mean"
DPO_ACCURACY = "rewards/accuracies"
DPO_MARGIN = "rewards/margins"


class WarningReason(StrEnum):
    """Reasons of the warnings a tracker raises (used as Kubernetes Event reasons)."""

    LOSS_NAN = "LossNaN"
    LOSS_DIVERGING = "LossDiverging"
    NO_PROGRESS = "NoProgress"
    SLOW_THROUGHPUT = "SlowThroughput"


class TrackerWarning(BaseModel):
    """A warning for the user, emitted as a Kubernetes Event of type Warning."""

    reason: WarningReason
    """CamelCase reason."""
    message: str
    """What happened and what the user can do."""


class TrackerState(CamelModel):
    """What a tracker needs to carry on after an operator restart (kept in status, a few fields)."""

    model_config = CamelModel.model_config | {"extra": "ignore"}

    last_event_time: float | None = None
    """Runtime wall time of the newest event seen: older lines are replays."""
    last_step: int = 0
    """The newest step seen."""
    active: list[WarningReason] = Field(default_factory=list)
    """Warnings raised and not yet cleared."""
    loss_min: float | None = None
    """Running minimum of the finite losses."""
    losses: int = 0
    """Finite losses seen."""
    above: int = 0
    """Consecutive losses above the divergence threshold."""
    throughput: list[float] = Field(default_factory=list)
    """The latest tokens/s readings (at most THROUGHPUT_WINDOW)."""
    throughput_readings: int = 0
    """tokens/s readings seen."""
    running: bool = False
    finished: bool = False
    attempt_started: float | None = None
    """Runtime wall time of the current attempt's `start` event."""
    elapsed_before: float = 0.0
    """Training seconds of the earlier attempts."""


def _rfc3339(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def diverging_threshold(loss_min: float) -> float:
    """The loss above which a step counts towards `LossDiverging`.

    Parameters
    ----------
    loss_min
        Running minimum of the finite losses.

    Returns
    -------
    float
        ``loss_min + max(|loss_min|, DIVERGE_MARGIN)``.
    """
    return loss_min + max(abs(loss_min), DIVERGE_MARGIN)


class ProgressTracker:
    """Parses one job's runtime event lines into progress, outputs and warnings.

    Parameters
    ----------
    estimated_tokens_per_second
        The plan's throughput estimate; None turns `SlowThroughput` off.
    min_interval_seconds
        Least time between two progress updates handed out by :meth:`take_update`.
    stall_seconds
        Silence while training that raises `NoProgress`.
    clock
        Monotonic clock in seconds (tests pass a fake one).
    """

    def __init__(
        self,
        estimated_tokens_per_second: float | None = None,
        *,
        min_interval_seconds: float = 10.0,
        stall_seconds: float = 1800.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.estimated_tokens_per_second = estimated_tokens_per_second
        self.min_interval_seconds = min_interval_seconds
        self.stall_seconds = stall_seconds
        self._clock = clock
        self.progress = Progress()
        self.outputs = Outputs()
        self.error: RuntimeEvent | None = None
        """The runtime's `error` event, when the run failed."""
        self.key: str | None = None
        """The attempt's event-signing key: when set, only lines signed with it count (anything else
        the run prints, such as reward code or a dataset row, may imitate an event)."""
        self.done: RuntimeEvent | None = None
        """The runtime's `done` event, when the run finished."""
        self.log_cursor: object | None = None
        """Where the monitor's last read of this attempt's log ended (a backend's `LogCursor`): kept with the
        tracker, so both start afresh together (a new attempt, a restarted operator)."""
        self._state = TrackerState()
        self._last_activity = clock()
        self._last_take: float | None = None
        self._dirty = False
        self._forced = False
        self._pending: list[TrackerWarning] = []

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any] | TrackerState | None,
        *,
        progress: Progress | None = None,
        outputs: Outputs | None = None,
        estimated_tokens_per_second: float | None = None,
        min_interval_seconds: float = 10.0,
        stall_seconds: float = 1800.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> ProgressTracker:
        """A tracker that carries on from :meth:`state` and the progress/outputs already in status.

        Parameters
        ----------
        state
            What :meth:`state` returned (None or {} for a fresh tracker).
        progress, outputs
            `status.progress` and `status.outputs` as last written.
        estimated_tokens_per_second, min_interval_seconds, stall_seconds, clock
            As for the constructor.

        Returns
        -------
        ProgressTracker
            A tracker that skips already seen lines; the stall timer starts afresh.
        """
        tracker = cls(
            estimated_tokens_per_second,
            min_interval_seconds=min_interval_seconds,
            stall_seconds=stall_seconds,
            clock=clock,
        )
        if isinstance(state, TrackerState):
            tracker._state = state.model_copy(deep=True)
        elif state:
            tracker._state = TrackerState.model_validate(state)
        if progress is not None:
            tracker.progress = progress.model_copy(deep=True)
            # What status already shows counts as handed out: no forced write after a restart.
            tracker._last_take = clock()
        if outputs is not None:
            tracker.outputs = outputs.model_copy(deep=True)
        return tracker

    def state(self) -> dict[str, Any] | None:
        """The small dict to persist (camelCase), read back by :meth:`from_state`; None while nothing has been
        seen (a queued run: its first look writes nothing, and a thousand queued jobs cost no status write)."""
        if self._state == TrackerState():
            return None
        return self._state.wire()

    @property
    def running(self) -> bool:
        """Training has started and not finished."""
        return self._state.running and not self._state.finished

    @property
    def finished(self) -> bool:
        """A `done` or `error` event was seen."""
        return self._state.finished

    @property
    def active_warnings(self) -> list[WarningReason]:
        """Warnings raised and not yet cleared."""
        return list(self._state.active)

    def mark_running(self) -> None:
        """The backend reports the work running: start watching for a stall even before the first line."""
        if not self._state.running:
            self._state.running = True
            self._last_activity = self._clock()

    def feed(self, line: str) -> list[RuntimeEvent]:
        """Read log text (one line or several); returns the new runtime events in it.

        Parameters
        ----------
        line
            Log text; lines that are not runtime events are ignored, as are events older than the
            newest one already seen (a stream read again from its beginning).

        Returns
        -------
        list[RuntimeEvent]
            The events applied, in order.
        """
        events: list[RuntimeEvent] = []
        for text in line.splitlines() or [line]:
            event = parse_line(text, self.key)
            if event is None:
                continue
            last = self._state.last_event_time
            if last is not None and event.time <= last:
                continue
            self._state.last_event_time = event.time
            self._apply(event)
            events.append(event)
        return events

    def _apply(self, event: RuntimeEvent) -> None:
        self._last_activity = self._clock()
        self._clear(WarningReason.NO_PROGRESS)
        kind = event.ftjob
        if kind in (EventKind.START, EventKind.PROGRESS, EventKind.CHECKPOINT):
            self._state.running = True
        if kind == EventKind.PUBLISHED:
            self._published(event)
            return
        if kind == EventKind.ERROR:
            self.error = event
            self._state.finished = True
            self._forced = True
            return
        if kind == EventKind.CHECKPOINT:
            return
        if kind == EventKind.EVALUATION:
            self._evaluation(event)
            return
        first = self.progress.updated_time is None
        p = self.progress
        if event.step is not None:
            p.step = event.step
            self._state.last_step = max(self._state.last_step, event.step)
        if event.total_steps is not None:
            p.total_steps = event.total_steps
        if event.epoch is not None:
            p.epoch = event.epoch
        if event.learning_rate is not None:
            p.learning_rate = event.learning_rate
        if event.trackio_url:
            p.trackio_url = event.trackio_url
            self.outputs.trackio = event.trackio_url
        self._elapsed(event)
        if kind == EventKind.START and event.rows is not None:
            p.rows = event.rows
        if kind == EventKind.PROGRESS:
            self._method_metrics(event.metrics or {})
            if event.loss is not None:
                self._loss(event.loss, event.step)
            if event.tokens_per_second is not None:
                p.tokens_per_second = round(event.tokens_per_second, 2)
                self._throughput(event.tokens_per_second)
            p.eta_seconds = None if event.eta_seconds is None else round(event.eta_seconds)
        elif kind == EventKind.DONE:
            self.done = event
            self._state.finished = True
            p.eta_seconds = 0
            if p.loss is None:
                p.loss = _finite(event.loss)
            if event.url and not self.outputs.model:
                self.outputs.model = event.url
        if p.total_steps:
            p.percent = f"{min(100, int(100 * p.step / p.total_steps))}%"
        p.updated_time = _rfc3339(event.time)
        self._dirty = True
        if first or kind in (EventKind.START, EventKind.DONE):
            self._forced = True

    def _elapsed(self, event: RuntimeEvent) -> None:
        # Each attempt's `start` opens a span; earlier spans are summed so a resume keeps the total.
        s, p = self._state, self.progress
        if event.ftjob == EventKind.START:
            if s.attempt_started is not None:
                s.elapsed_before = p.elapsed_seconds or s.elapsed_before
            s.attempt_started = event.time
        if s.attempt_started is not None:
            p.elapsed_seconds = round(s.elapsed_before + max(0.0, event.time - s.attempt_started), 1)

    def _method_metrics(self, metrics: dict[str, float]) -> None:
        """What tells how DPO and GRPO are doing (their loss alone does not): TRL's logged rewards."""
        p = self.progress
        reward = _finite(metrics.get(REWARD))
        if reward is not None:
            p.reward = round(reward, 6)
            if p.first_reward is None:
                p.first_reward = p.reward
        per_function = {
            key[len(REWARDS_PREFIX) : -len(MEAN_SUFFIX)]: round(value, 6)
            for key, value in metrics.items()
            if key.startswith(REWARDS_PREFIX) and key.endswith(MEAN_SUFFIX) and _finite(value) is not None
        }
        if per_function:
            p.rewards = per_function
        accuracy = _finite(metrics.get(DPO_ACCURACY))
        if accuracy is not None:
            p.reward_accuracy = round(accuracy, 6)
        margin = _finite(metrics.get(DPO_MARGIN))
        if margin is not None:
            p.reward_margin = round(margin, 6)

    def _evaluation(self, event: RuntimeEvent) -> None:
        evaluation = self.progress.evaluation or EvaluationProgress()
        # Figures without the `eval_` prefix, and without the Trainer's timing counters.
        figures = {
            k.removeprefix("eval_"): round(v, 6)
            for k, v in (event.metrics or {}).items()
            if k.startswith("eval_")
            and k != "eval_loss"
            and not k.endswith(("_runtime", "_per_second"))
            and math.isfinite(v)
        }
        loss = _finite(event.loss)
        if event.baseline:
            evaluation.base_loss = round(loss, 6) if loss is not None else None
            evaluation.base_metrics = figures or None
        else:
            evaluation.loss = round(loss, 6) if loss is not None else None
            evaluation.step = event.step
            evaluation.metrics = figures or None
        self.progress.evaluation = evaluation
        self._dirty = self._forced = True  # rare and telling: written at once

    def _published(self, event: RuntimeEvent) -> None:
        if not event.url:
            return
        if event.artifact == "model":
            self.outputs.model = event.url
        elif event.artifact == "gguf" and event.url not in self.outputs.gguf:
            self.outputs.gguf.append(event.url)

    def _loss(self, loss: float, step: int | None) -> None:
        s = self._state
        at = f" at step {step}" if step is not None else ""
        if not math.isfinite(loss):
            # Kubernetes JSON has no NaN: status shows no loss, the warning says why.
            self.progress.loss = None
            self._raise(
                WarningReason.LOSS_NAN,
                f"training loss is {loss}{at}; lower `hyperparameters.learningRate` or check the dataset "
                "for empty or broken rows",
            )
            return
        self.progress.loss = round(loss, 6)
        if self.progress.first_loss is None:
            self.progress.first_loss = self.progress.loss
        self._clear(WarningReason.LOSS_NAN)
        s.losses += 1
        if s.loss_min is None or loss < s.loss_min:
            s.loss_min = loss
        threshold = diverging_threshold(s.loss_min)
        s.above = s.above + 1 if s.losses > DIVERGE_WARMUP and loss > threshold else 0
        if s.above >= DIVERGE_PATIENCE:
            self._raise(
                WarningReason.LOSS_DIVERGING,
                f"training loss {loss:.4g}{at} has stayed above {threshold:.4g} for {s.above} logged steps "
                f"(its minimum was {s.loss_min:.4g}); lower `hyperparameters.learningRate`",
            )
        elif s.above == 0:
            self._clear(WarningReason.LOSS_DIVERGING)

    def _throughput(self, tokens_per_second: float) -> None:
        s = self._state
        s.throughput_readings += 1
        if s.throughput_readings <= THROUGHPUT_WARMUP:
            return
        s.throughput = [*s.throughput, tokens_per_second][-THROUGHPUT_WINDOW:]
        estimate = self.estimated_tokens_per_second
        if not estimate or len(s.throughput) < THROUGHPUT_WINDOW:
            return
        mean = sum(s.throughput) / len(s.throughput)
        if mean < SLOW_RATIO * estimate:
            self._raise(
                WarningReason.SLOW_THROUGHPUT,
                f"throughput is {mean:.0f} tokens/s, {100 * mean / estimate:.0f}% of the plan's "
                f"{estimate:.0f}; the run will take longer and cost more than estimated",
            )
        else:
            self._clear(WarningReason.SLOW_THROUGHPUT)

    def _raise(self, reason: WarningReason, message: str) -> None:
        if reason in self._state.active:
            return
        self._state.active.append(reason)
        if all(w.reason != reason for w in self._pending):
            self._pending.append(TrackerWarning(reason=reason, message=message))

    def _clear(self, reason: WarningReason) -> None:
        if reason in self._state.active:
            self._state.active.remove(reason)

    def _check_stall(self) -> None:
        p = self.progress
        training = self.running and not (p.total_steps and p.step >= p.total_steps)
        silent = self._clock() - self._last_activity
        if training and silent >= self.stall_seconds:
            self._raise(
                WarningReason.NO_PROGRESS,
                f"no progress reported for {silent / 60:.0f} minutes (last step {p.step}); "
                "check the training logs with `ftjob logs`",
            )

    def warnings(self) -> list[TrackerWarning]:
        """Warnings raised since the last call, each reason once until its cause clears.

        Returns
        -------
        list[TrackerWarning]
            New warnings, oldest first (empty most of the time).
        """
        self._check_stall()
        pending, self._pending = self._pending, []
        return pending

    def take_update(self) -> Progress | None:
        """Progress to write to status now, or None to skip this time.

        The first update, `start`, `done` and `error` are handed out at once; other changes at most once
        per `min_interval_seconds`.

        Returns
        -------
        Progress | None
            A copy of the current progress, or None when nothing changed or it is too soon.
        """
        if not (self._dirty or self._forced):
            return None
        now = self._clock()
        due = self._last_take is None or now - self._last_take >= self.min_interval_seconds
        if not (self._forced or due):
            return None
        self._last_take = now
        self._dirty = self._forced = False
        return self.progress.model_copy(deep=True)
