"""Stopping on SIGTERM without losing work: finish the step, save and push a checkpoint, exit 143.

Kubernetes sends SIGTERM on preemption, eviction and pod deletion, and SIGKILL when the pod's
`terminationGracePeriodSeconds` run out; the Local backend does the same on cancel, and `timeout` at the
time limit. The handler only records the signal (no I/O in a signal handler):
:class:`finetune_training.checkpoints.StopOnSignalCallback` turns it into `should_save` and
`should_training_stop` at the end of the current optimizer step, so the Trainer's own save runs and
`CheckpointPushCallback` pushes it before training returns. The grace period must therefore cover one
training step plus saving and pushing a checkpoint (about a minute for a LoRA adapter; more for full
fine-tuning of a large model). Further SIGTERMs change nothing: `timeout` and a process-group kill deliver
the same stop two or three times, so only SIGKILL at the end of the grace cuts the save short.

Kept free of heavy imports: the runner imports it before torch loads.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_EXIT_CODE = 143
"""128 + SIGTERM: what a shell reports for a process the signal ended, so either way reads as a stop."""


class Stopped(Exception):
    """Training stopped on a signal after saving; the runner exits with `STOP_EXIT_CODE`."""

    def __init__(self, step: int) -> None:
        super().__init__(f"stopped on a signal at step {step}")
        self.step = step


class StopRequest:
    """Whether a stop was asked for: set by SIGTERM while :meth:`installed`, read between steps."""

    def __init__(self) -> None:
        self.signal: int | None = None

    @property
    def requested(self) -> bool:
        """True once SIGTERM arrived."""
        return self.signal is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle SIGTERM inside the block (main thread only; elsewhere a no-op), then restore the handler."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGTERM, self._handle)
        try:
            yield self
        finally:
            signal.signal(signal.SIGTERM, previous)

    def agreed(self, device: Any = None) -> bool:
        """True when any process of the run was asked to stop, so all ranks stop at the same step.

        With several processes each may see the signal at a different step; stopping apart would leave
        the others blocked in a collective, so the flag is all-reduced (one scalar per step).
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return self.requested
        import torch

        flag = torch.tensor([1 if self.requested else 0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())
