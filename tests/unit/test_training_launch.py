"""Plan loading and the accelerate decision of `ftjob train` (no torch needed)."""

from __future__ import annotations

import base64
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from finetune_training.errors import TrainingError
from finetune_training.launch import launcher_command, needs_launcher, run_passing_stop_on
from finetune_training.plan import TrainingPlan
from finetune_training.runner import load_plan
from finetune_training.stop import STOP_EXIT_CODE

PLAN = {
    "job": {"name": "j"},
    "model": "m",
    "dataset": {"name": "d"},
    "method": "SFT",
    "peft": "LoRA",
    "tracking": {"project": "p", "runName": "r"},
}


def _plan(gpus: int, nodes: int = 1) -> TrainingPlan:
    return TrainingPlan.model_validate({**PLAN, "resources": {"gpuCount": gpus, "nodes": nodes}})


def test_several_gpus_launch_torchrun_once() -> None:
    assert needs_launcher(_plan(4), environ={})
    assert not needs_launcher(_plan(1), environ={})
    assert not needs_launcher(_plan(4), environ={"LOCAL_RANK": "0"})  # already a worker


def test_the_launcher_is_torchrun_with_one_process_per_gpu() -> None:
    cmd = launcher_command(_plan(4), "plan.json")
    assert cmd[1:3] == ["-m", "torch.distributed.run"]
    assert cmd[cmd.index("--nproc-per-node") + 1] == "4"
    assert cmd[-4:] == ["-m", "finetune_training.runner", "--plan", "plan.json"]
    assert launcher_command(_plan(2), None)[-2:] == ["--plan-env", "FTJOB_PLAN"]


def test_several_nodes_join_through_torchruns_rendezvous_not_standalone() -> None:
    cmd = launcher_command(_plan(8, nodes=4), "plan.json")
    assert "--standalone" not in cmd, "a standalone rendezvous would make each node a world of its own"
    assert cmd[cmd.index("--nnodes") + 1] == "4" and cmd[cmd.index("--nproc-per-node") + 1] == "8"
    assert needs_launcher(_plan(0, nodes=2), environ={}), "two CPU nodes are two processes"
    assert "--standalone" in launcher_command(_plan(2), "plan.json")


def test_a_node_that_trained_alone_fails_the_world_size_check() -> None:
    from finetune_training.runner import check_world_size

    check_world_size(_plan(8, nodes=2), 16)
    with pytest.raises(TrainingError) as err:
        check_world_size(_plan(8, nodes=2), 8)  # the trap: each node a world of its own, both "succeed"
    assert "the plan needs 16 (2 node(s) × 8 process(es)" in err.value.message


def test_a_run_that_joined_fewer_processes_than_planned_fails() -> None:
    from finetune_training.runner import check_world_size

    check_world_size(_plan(0), 1)
    check_world_size(_plan(4), 4)
    with pytest.raises(TrainingError) as err:
        check_world_size(_plan(2), 1)  # what `accelerate launch` on a machine without GPUs does
    assert (
        err.value.reason == "WorldSizeMismatch"
        and "joined 1 process(es), the plan needs 2" in err.value.message
    )


def test_plan_from_file_or_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plan.json"
    _plan(0).dump(path)
    assert load_plan(str(path)).job.name == "j"
    monkeypatch.setenv("MY_PLAN", base64.b64encode(path.read_bytes()).decode())
    assert load_plan(None, "MY_PLAN").model == "m"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        (None, "pass `--plan plan.json`"),
        ("not base64!", "base64"),
        (base64.b64encode(b"{}").decode(), "`job`"),
    ],
)
def test_bad_plans_are_named(env: str | None, fragment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FTJOB_PLAN", raising=False)
    if env is not None:
        monkeypatch.setenv("FTJOB_PLAN", env)
    with pytest.raises(TrainingError) as err:
        load_plan(None)
    assert err.value.reason == "PlanInvalid" and fragment in err.value.message


def test_the_launcher_passes_sigterm_on_and_exits_with_the_stop_code() -> None:
    # The child reports the signal and exits as a failing elastic agent would (1); the launcher says "stopped".
    child = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('got SIGTERM', flush=True), sys.exit(1)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        started = time.monotonic()
        code = run_passing_stop_on([sys.executable, "-c", child])
    finally:
        timer.cancel()
    assert code == STOP_EXIT_CODE and time.monotonic() - started < 30
    assert run_passing_stop_on([sys.executable, "-c", "raise SystemExit(3)"]) == 3  # no stop: its own code


def test_an_hf_xet_or_hub_outage_is_reported_as_hub_unavailable() -> None:
    """Production pushes go through hf_xet, whose failures are plain OS/runtime errors: the runtime tells
    them (and a Hub that cannot answer) apart from a training failure, so the operator retries the attempt."""
    import httpx2

    from finetune_training.runner import _reason

    def _upload_xet_files() -> None:  # the frame huggingface_hub's Xet upload runs in
        raise RuntimeError(
            "Data processing error: CAS service error : Reqwest Error: HTTP status server error"
        )

    with pytest.raises(RuntimeError) as xet:
        _upload_xet_files()
    assert _reason(xet.value)[0] == "HubUnavailable"
    assert _reason(httpx2.ConnectError("connection refused"))[0] == "HubUnavailable"
    assert _reason(RuntimeError("CUDA error: device-side assert"))[0] == "TrainingFailed"
