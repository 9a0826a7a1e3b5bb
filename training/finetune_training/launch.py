"""Decide how to start a run: in this process, or under PyTorch's own launcher (`torchrun`) for several GPUs.

`torchrun` rather than `accelerate launch`: the Trainer reads everything else (bf16, gradient checkpointing)
from its own arguments, torchrun brings up the process group on GPUs (NCCL) and CPUs (gloo) alike, and its
rendezvous is what a multi-node run needs. `accelerate launch` on a machine without GPUs quietly
starts one process where two were asked for; the runtime checks the world size it joined either way.

Several nodes: every node runs the same command; torchrun's own environment variables (`PET_NODE_RANK`,
`PET_MASTER_ADDR`, `PET_MASTER_PORT`, which the Kubernetes backend sets on each pod of its Indexed Job) say
which node this is and where node 0 listens. Only the node count comes from the plan, so a pod that was
given another count than its plan fails the world-size check instead of training on part of the hardware.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

from finetune_training.errors import TrainingError
from finetune_training.events import EventKind, RuntimeEvent, emit
from finetune_training.plan import TrainingPlan
from finetune_training.runner import PLAN_ENV, load_plan, run
from finetune_training.stop import STOP_EXIT_CODE

# Set by torchrun (and accelerate) in each worker: a worker must train, never launch again.
_WORKER_ENV = ("LOCAL_RANK", "ACCELERATE_PROCESS_ID", "WORLD_SIZE")


def needs_launcher(plan: TrainingPlan, environ: dict[str, str] | None = None) -> bool:
    """True when the plan has several processes and this process is not already one of the workers."""
    env = os.environ if environ is None else environ
    return plan.resources.world_size > 1 and not any(name in env for name in _WORKER_ENV)


def launcher_command(plan: TrainingPlan, plan_path: str | None, plan_env: str = PLAN_ENV) -> list[str]:
    """The `torchrun` command that runs the plan once per GPU of this machine, and joins the other nodes'
    (static rendezvous at node 0: `PET_NODE_RANK`, `PET_MASTER_ADDR` and `PET_MASTER_PORT` in the environment)
    when the plan spans several."""
    source = ["--plan", plan_path] if plan_path else ["--plan-env", plan_env]
    res = plan.resources
    rendezvous = ["--standalone"] if res.nodes == 1 else []
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *rendezvous,
        "--nnodes",
        str(res.nodes),
        "--nproc-per-node",
        str(res.processes_per_node),
        "-m",
        "finetune_training.runner",
        *source,
    ]


def launch(plan_path: str | None, plan_env: str = PLAN_ENV) -> int:
    """Run the plan here, or re-launch it under accelerate when it has several GPUs.

    Returns
    -------
    int
        The exit code of the run.
    """
    try:
        plan = load_plan(plan_path, plan_env)
    except TrainingError as exc:
        emit(RuntimeEvent(ftjob=EventKind.ERROR, reason=exc.reason, message=exc.message))
        return 1
    if needs_launcher(plan):
        # The workers emit their own events (rank 0 only) and errors; pass their exit code on.
        return run_passing_stop_on(launcher_command(plan, plan_path, plan_env))
    return run(plan_path, plan_env)


def run_passing_stop_on(command: list[str]) -> int:
    """Run `command`, passing SIGTERM on to it, and return its exit code (143 after a stop).

    In a container this process is PID 1, the only one the kubelet signals, and its death kills the rest: it
    forwards the signal and waits, and torch's elastic agent (`torchrun`) passes it to every
    worker, which saves and pushes the checkpoint (:mod:`finetune_training.stop`). The agent waits
    `TORCH_ELASTIC_SHUTDOWN_TIMEOUT` for them (30 s by default; raised here so the pod's grace period is the
    bound) and then exits non-zero itself, so after a forwarded stop any failure code reads as the stop;
    the `stopped` or `error` event says which.
    """
    env = {"TORCH_ELASTIC_SHUTDOWN_TIMEOUT": "3600", **os.environ}
    child = subprocess.Popen(command, env=env)
    forwarded: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        forwarded.append(signum)
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        code = child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return STOP_EXIT_CODE if forwarded and code != 0 else code
