"""Two processes, really: `ftjob train` on a plan with two GPUs starts PyTorch's launcher (torchrun), which on
this CPU machine brings up a gloo group of two workers through the same launch path a multi-GPU pod uses.
Rank 0 alone reports; the step's batch spans both processes; a launcher that started fewer fails loudly."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_training.events import EventKind
from finetune_training.plan import TrainingPlan
from tests.integration.training_support import events_of, run_subprocess, subprocess_env, train_command

pytestmark = pytest.mark.slow


def test_two_processes_train_as_one_run(make_plan: Callable[..., TrainingPlan], tmp_path: Path) -> None:
    plan = make_plan("SFT", "text.jsonl", resources={"gpuCount": 2})
    proc = run_subprocess(plan, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = events_of(proc.stdout)
    kinds = [e.ftjob for e in events]
    assert kinds.count(EventKind.START) == 1 and kinds.count(EventKind.DONE) == 1, "rank 0 alone reports"
    start = next(e for e in events if e.ftjob == EventKind.START)
    hp = plan.hyperparameters
    assert start.rows is not None
    assert start.rows.examples_per_step == hp.per_device_batch_size * hp.gradient_accumulation_steps * 2
    assert (Path(plan.output.local_dir) / "final" / "adapter_model.safetensors").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_node(plan_path: Path, rank: int, port: int, workdir: Path) -> subprocess.Popen[str]:
    """One node of a multi-node run, started as the Kubernetes backend starts each pod of its Indexed Job:
    the same command and plan, torchrun's rendezvous variables in the environment, a workspace of its own."""
    workdir.mkdir()
    env = subprocess_env(PET_NODE_RANK=str(rank), PET_MASTER_ADDR="127.0.0.1", PET_MASTER_PORT=str(port))
    return subprocess.Popen(
        train_command(plan_path),
        cwd=workdir,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_two_nodes_train_as_one_run_through_the_rendezvous(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path
) -> None:
    """Two "nodes" (one CPU process each) join at node 0 and train one run: one start, one result, a model
    that loads, and a loss that matches one process training the same global batch."""
    hyperparameters = {"maxSteps": 4, "learningRate": 1e-3}
    plan = make_plan("SFT", "text.jsonl", hyperparameters=hyperparameters, resources={"nodes": 2})
    plan.output.local_dir = "out"  # relative: each node writes into its own workspace, as each pod does
    path = tmp_path / "plan.json"
    plan.dump(path)
    port = _free_port()
    nodes = [_start_node(path, rank, port, tmp_path / f"node{rank}") for rank in (0, 1)]
    outs = [node.communicate(timeout=600) for node in nodes]
    for node, (_, err) in zip(nodes, outs, strict=True):
        assert node.returncode == 0, err[-3000:]
    events = [events_of(out) for out, _ in outs]
    assert [e.ftjob for e in events[1]].count(EventKind.DONE) == 0, "node 1 neither reports nor publishes"
    start = next(e for e in events[0] if e.ftjob == EventKind.START)
    assert start.rows is not None and start.rows.examples_per_step == 2 * 2, "the batch spans both nodes"
    done = next(e for e in events[0] if e.ftjob == EventKind.DONE)
    final = tmp_path / "node0" / "out" / "final"
    from peft import PeftConfig

    assert PeftConfig.from_pretrained(str(final)).base_model_name_or_path, "the adapter node 0 saved loads"
    assert not (tmp_path / "node1" / "out" / "final" / "adapter_model.safetensors").exists()

    # The same global batch in one process: the losses agree within the noise of floating-point reduction.
    single_hp = {**hyperparameters, "perDeviceBatchSize": 4}
    single = make_plan("SFT", "text.jsonl", hyperparameters=single_hp)
    single.output.local_dir = str(tmp_path / "single")
    proc = run_subprocess(single, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    alone = next(e for e in events_of(proc.stdout) if e.ftjob == EventKind.DONE)
    assert done.loss is not None and alone.loss is not None
    assert abs(done.loss - alone.loss) <= 0.05 * alone.loss, (done.loss, alone.loss)


def test_a_node_that_joins_alone_fails_instead_of_training_a_fraction(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path
) -> None:
    """The misconfigured launch: a pod given one node where its plan says two trains alone unless checked."""
    plan = make_plan("SFT", "text.jsonl", resources={"nodes": 2})
    path = tmp_path / "plan.json"
    plan.dump(path)
    env = subprocess_env(WORLD_SIZE="1", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
    env["MASTER_PORT"] = str(_free_port())
    proc = subprocess.run(
        train_command(path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode != 0
    errors = [e for e in events_of(proc.stdout) if e.ftjob == EventKind.ERROR]
    assert errors and errors[0].reason == "WorldSizeMismatch", proc.stdout[-2000:]
