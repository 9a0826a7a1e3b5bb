"""The runtime's structured output: one JSON object per line on stdout, read by the operator's parser.

Every line carries `"ftjob": <kind>` so it stands out among library logs in any backend's log stream
(pod logs, HF Jobs server-sent events, a local process's file).
"""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from typing import TextIO

from pydantic import Field

from finetune_training.camel import CamelModel


class EventKind(StrEnum):
    """What a line reports."""

    START = "start"
    """Training begins; `totalSteps` known; `resumedFromStep` when resuming."""
    PROGRESS = "progress"
    """One logging step."""
    CHECKPOINT = "checkpoint"
    """A checkpoint was saved (and pushed); `step`, `url`."""
    PUBLISHED = "published"
    """An artifact landed: `artifact` is `model` or `gguf`, `url` where."""
    DONE = "done"
    """Everything finished; final metrics."""
    STOPPED = "stopped"
    """The run stopped on a signal after saving a checkpoint: `reason` (`Signal`), `step`, `url` of the
    checkpoint to resume from; the process exits with code 143."""
    ERROR = "error"
    """The run failed; `reason` (CamelCase) and `message` say why."""


class DataRows(CamelModel):
    """How the dataset's rows became training steps, so epochs and steps add up (in the `start` event).

    An epoch is ``examples / examplesPerStep`` steps: with packing, several rows share one example, so an
    epoch takes fewer steps than ``datasetRows / examplesPerStep``.
    """

    model_config = CamelModel.model_config | {"extra": "ignore"}

    dataset_rows: int
    """Rows of the split after mapping (every one is trained on: none is held out for evaluation)."""
    examples: int
    """Training examples the trainer built from them: packed sequences when packing, else one per row."""
    packed: bool = False
    """Rows were packed into sequences of up to `maxLength` tokens."""
    dropped_rows: int = 0
    """Rows the trainer left out (unpacked runs): DPO drops a row whose prompt alone fills `maxLength`."""
    dropped_reason: str | None = None
    """Why they were left out."""
    examples_per_step: int
    """Examples one optimizer step consumes: per-device batch x gradient accumulation x processes."""
    truncated_rows: int | None = None
    """Rows longer than `maxLength` tokens, cut to fit (their tails are not trained on); None when not
    counted (packing cuts sequences, not rows)."""
    max_length: int | None = None
    """The token limit per example."""
    generations_per_prompt: int | None = None
    """GRPO: completions sampled per prompt; a step consumes ``examplesPerStep / generationsPerPrompt``
    prompts."""


class RuntimeEvent(CamelModel):
    """One structured line from `ftjob train`."""

    model_config = CamelModel.model_config | {"extra": "ignore"}

    ftjob: EventKind
    time: float = Field(default_factory=time.time)
    step: int | None = None
    total_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    resumed_from_step: int | None = None
    trackio_url: str | None = None
    artifact: str | None = None
    url: str | None = None
    reason: str | None = None
    message: str | None = None
    metrics: dict[str, float] | None = None
    rows: DataRows | None = None
    """How rows became steps (the `start` event)."""


def emit(event: RuntimeEvent, stream: TextIO | None = None) -> None:
    """Write one event line and flush, so log streams see it at once."""
    out = stream or sys.stdout
    out.write(json.dumps(event.wire(), separators=(",", ":")) + "\n")
    out.flush()


def parse_line(line: str) -> RuntimeEvent | None:
    """The event on a log line, or None for any other line (library logs, tracebacks)."""
    start = line.find('{"ftjob"')
    if start < 0:
        return None
    try:
        return RuntimeEvent.model_validate(json.loads(line[start:]))
    except ValueError:
        return None
