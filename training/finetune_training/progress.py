"""Progress as `finetune_training.events` lines: start, one line per logging step, checkpoint, done.

Only the main process (rank 0) writes, so a multi-GPU run prints each line once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from finetune_training.events import DataRows, EventKind, RuntimeEvent, emit
from finetune_training.plan import Tracking


def trackio_location(tracking: Tracking, endpoint: str | None = None) -> str:
    """Where the run's metrics can be seen: the Space URL, or the local trackio database file."""
    if tracking.space_id:
        base = (endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
        return f"{base}/spaces/{tracking.space_id}"
    root = os.environ.get("TRACKIO_DIR") or str(
        Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "trackio"
    )
    return f"file://{Path(root) / (tracking.project + '.db')}"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def data_rows(dataset_rows: int, trainer: Any) -> DataRows:
    """How the trainer turned `dataset_rows` rows into examples and steps (see :class:`DataRows`).

    Parameters
    ----------
    dataset_rows
        Rows handed to the trainer.
    trainer
        The built trainer (its `train_dataset` is the processed one: packed, tokenized).
    """
    args = trainer.args
    packed = bool(getattr(args, "packing", False))
    max_length = getattr(args, "max_length", None)
    train = trainer.train_dataset
    truncated = None
    if not packed and max_length and "input_ids" in getattr(train, "column_names", []):
        import pyarrow.compute as pc

        # Arrow list lengths: no Python lists for a large dataset. A row at the limit was cut to fit.
        lengths = pc.list_value_length(train.data.column("input_ids"))
        truncated = int(pc.sum(pc.greater_equal(lengths, max_length)).as_py() or 0)
    dropped = 0 if packed else max(0, dataset_rows - len(train))
    reason = None
    if dropped:
        # TRL's DPOTrainer filters rows whose prompt is truncated away entirely; other trainers keep rows.
        fills = "prompt_ids" in getattr(train, "column_names", [])
        reason = f"the prompt alone fills maxLength {max_length}" if fills else "left out by the trainer"
    return DataRows(
        dataset_rows=dataset_rows,
        examples=len(train),
        packed=packed,
        dropped_rows=dropped,
        dropped_reason=reason,
        examples_per_step=args.per_device_train_batch_size
        * args.gradient_accumulation_steps
        * args.world_size,
        truncated_rows=truncated,
        max_length=max_length,
        generations_per_prompt=getattr(args, "num_generations", None),
    )


class EventsCallback(TrainerCallback):
    """Emits `start` and `progress` events from the Trainer's state and logs.

    Parameters
    ----------
    resumed_from_step
        The global step the run resumed from (None when it starts at step 0).
    trackio_url
        The trackio location, reported in the `start` event.
    rows
        How rows became steps, reported in the `start` event (set once the trainer is built).
    """

    def __init__(
        self,
        resumed_from_step: int | None = None,
        trackio_url: str | None = None,
        rows: DataRows | None = None,
    ) -> None:
        self.resumed_from_step = resumed_from_step
        self.trackio_url = trackio_url
        self.rows = rows
        self._started = 0.0
        self._first_step = 0
        self._last_time = 0.0
        self._last_tokens = 0

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Report the total steps (known once the dataloader is built) and where resuming began."""
        self._started = self._last_time = time.monotonic()
        self._first_step = state.global_step
        self._last_tokens = int(state.num_input_tokens_seen or 0)
        if state.is_world_process_zero:
            emit(
                RuntimeEvent(
                    ftjob=EventKind.START,
                    step=state.global_step,
                    total_steps=state.max_steps,
                    resumed_from_step=self.resumed_from_step,
                    trackio_url=self.trackio_url,
                    rows=self.rows,
                )
            )

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """One `progress` line per logging step; the end-of-training summary log is left to `done`."""
        logs = logs or {}
        if not state.is_world_process_zero or "train_loss" in logs:
            return
        if "eval_loss" in logs or any(k.startswith("eval_") for k in logs):
            emit(
                RuntimeEvent(
                    ftjob=EventKind.EVALUATION,
                    step=state.global_step,
                    total_steps=state.max_steps or None,
                    loss=_number(logs.get("eval_loss")),
                    metrics={k: float(v) for k, v in logs.items() if _number(v) is not None} or None,
                    baseline=state.global_step == 0 or None,
                )
            )
            return
        now = time.monotonic()
        # Real (non-pad) tokens counted by the Trainer; else TRL's own running count (GRPO).
        tokens = int(state.num_input_tokens_seen or logs.get("num_tokens") or 0)
        span = now - self._last_time
        tokens_per_second = (tokens - self._last_tokens) / span if tokens and span > 0 else None
        self._last_time, self._last_tokens = now, tokens
        done = state.global_step - self._first_step
        eta = (now - self._started) / done * (state.max_steps - state.global_step) if done > 0 else None
        emit(
            RuntimeEvent(
                ftjob=EventKind.PROGRESS,
                step=state.global_step,
                total_steps=state.max_steps,
                epoch=_number(state.epoch),
                loss=_number(logs.get("loss")),
                learning_rate=_number(logs.get("learning_rate")),
                tokens_per_second=tokens_per_second,
                eta_seconds=eta,
                metrics={k: float(v) for k, v in logs.items() if _number(v) is not None} or None,
            )
        )
