"""The runtime's structured output: one JSON object per line on stdout, read by the operator's parser.

Every line carries `"ftjob": <kind>` so it stands out among library logs in any backend's log stream
(pod logs, HF Jobs server-sent events, a local process's file).

Anything the run prints can look like an event (reward code, a printed dataset row), so with a key in
`FTJOB_EVENTS_KEY` (the operator's per-attempt secret) every line ends in `"sig": HMAC-SHA256(key, the
line up to the signature)` and a reader holding the key drops lines that do not verify.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
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
    EVALUATION = "evaluation"
    """Held-out evaluation: `metrics` (`eval_loss`, …) at `step`; `baseline` for the base model's, before
    training."""
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
    baseline: bool | None = None
    """An `evaluation` of the base model, before any training step."""


def commit_trailer(job_uid: str) -> str:
    """The line the runtime writes into the description of each commit that publishes a job's output; the
    operator confirms the outputs by finding it on the Hub (a log line alone never sets an output)."""
    return f"FineTuneJob-UID: {job_uid}"


KEY_ENV = "FTJOB_EVENTS_KEY"
"""The run's event-signing key (a secret the operator hands each attempt)."""
_SIGNED = re.compile(r'^(\{.*),"sig":"([0-9a-f]{64})"\}\s*$')


def signature(key: str, body: str) -> str:
    """HMAC-SHA256 of an event's JSON text (without the signature) under `key`, hex."""
    return hmac.new(key.encode(), body.encode(), hashlib.sha256).hexdigest()


def format_line(event: RuntimeEvent, key: str | None = None) -> str:
    """The event as one JSON line; signed (a trailing `"sig"` member) when a key is given."""
    body = json.dumps(event.wire(), separators=(",", ":"))
    if key:
        body = body[:-1] + f',"sig":"{signature(key, body)}"}}'
    return body


_held_key: str | None = None


def hold_key() -> None:
    """Take the key out of the environment (keeping it here), before user code (rewards) runs in this
    process, so that code does not find it in `os.environ` or hand it to children it starts."""
    global _held_key
    _held_key = os.environ.pop(KEY_ENV, None) or _held_key


def emit(event: RuntimeEvent, stream: TextIO | None = None, key: str | None = None) -> None:
    """Write one event line and flush, so log streams see it at once; signed with `key` or, by
    default, with the run's `FTJOB_EVENTS_KEY` when it has one."""
    out = stream or sys.stdout
    out.write(format_line(event, key or _held_key or os.environ.get(KEY_ENV)) + "\n")
    out.flush()


def parse_line(line: str, key: str | None = None) -> RuntimeEvent | None:
    """The event on a log line, or None for any other line (library logs, tracebacks).

    With `key`, only a line signed with it counts: an unsigned or forged one reads as None.
    """
    start = line.find('{"ftjob"')
    if start < 0:
        return None
    text = line[start:]
    if key:
        signed = _SIGNED.match(text)
        if signed is None:
            return None
        body = signed.group(1) + "}"
        if not hmac.compare_digest(signed.group(2), signature(key, body)):
            return None
        text = body
    try:
        return RuntimeEvent.model_validate(json.loads(text))
    except ValueError:
        return None
