"""A stop loses nothing, and a Hub that cannot be read never restarts a run at step 0.

Real `ftjob train` subprocesses against the Hub stand-in: SIGTERM mid-run (as Kubernetes sends on
preemption, eviction and pod deletion, and the Local backend on cancel) must end in a pushed checkpoint at
the step reached, exit code 143, and a second run that resumes from that step. A resume while the stand-in
answers 503 must retry, and fail `CheckpointUnreadable` rather than train from step 0 over the checkpoint.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from finetune_training.events import EventKind, RuntimeEvent, parse_line
from finetune_training.plan import TrainingPlan
from finetune_training.stop import STOP_EXIT_CODE
from tests.hub import HubServer, client_config, client_env, start_hub
from tests.integration.training_support import events_of, train_command

pytestmark = [pytest.mark.slow, pytest.mark.hub]

BASE = "tester/tiny-base"
MARKER = "last-checkpoint/ftjob-checkpoint.json"
# Short waits between the runtime's Hub retries, so the bounded retries end within the test.
FAST_RETRIES = {"FTJOB_HUB_READ_BACKOFF_SECONDS": "0.05"}


@pytest.fixture
def hub(tiny_model: Path) -> Iterator[HubServer]:
    """A fresh stand-in holding the tiny model as `tester/tiny-base`."""
    from huggingface_hub import HfApi

    with start_hub() as server, client_config(server):
        api = HfApi()
        api.create_repo(BASE, exist_ok=True)
        api.upload_folder(repo_id=BASE, folder_path=str(tiny_model))
        yield server


def _env(hub: HubServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**client_env(hub), "HF_HOME": str(tmp_path / "hf-home"), **extra}


def _run(
    plan: TrainingPlan, tmp_path: Path, hub: HubServer, **env: str
) -> tuple[int, list[RuntimeEvent], str]:
    path = tmp_path / "plan.json"
    plan.dump(path)
    proc = subprocess.run(
        train_command(path),
        capture_output=True,
        text=True,
        env=_env(hub, tmp_path, **env),
        cwd=tmp_path,
        timeout=600,
    )
    return proc.returncode, events_of(proc.stdout), proc.stderr


def _stop_after(
    plan: TrainingPlan, tmp_path: Path, hub: HubServer, step: int
) -> tuple[int, list[RuntimeEvent], int]:
    """Run until a `progress` event at `step` or later, SIGTERM it, and read to the end.

    Returns the exit code, the events, and the step the signal was sent after.
    """
    path = tmp_path / "plan.json"
    plan.dump(path)
    proc = subprocess.Popen(
        train_command(path),
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "stderr.txt").open("w"),
        text=True,
        env=_env(hub, tmp_path),
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    events: list[RuntimeEvent] = []
    signalled_at = -1
    try:
        for line in proc.stdout:
            event = parse_line(line)
            if event is None:
                continue
            events.append(event)
            if signalled_at < 0 and event.ftjob == EventKind.PROGRESS and (event.step or 0) >= step:
                proc.send_signal(signal.SIGTERM)
                signalled_at = event.step or 0
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert signalled_at >= 0, (
        f"the run ended before step {step}:\n{(tmp_path / 'stderr.txt').read_text()[-3000:]}"
    )
    return code, events, signalled_at


def _marker_step(hub: HubServer, repo: str) -> int:
    return int(json.loads(hub.store.read_file("model", repo, MARKER, "checkpoints"))["step"])


def test_sigterm_pushes_a_checkpoint_at_the_step_reached_and_the_next_run_resumes_there(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, hub: HubServer
) -> None:
    repo = "tester/stopped-model"
    # No periodic checkpoint before the end: the one on the Hub can only come from the stop.
    plan = make_plan(
        "SFT",
        "alpaca.json",
        "Alpaca",
        hyperparameters={"maxSteps": 40, "saveSteps": 1000},
        output={"repo": repo},
    )
    plan.model = BASE
    code, events, signalled_at = _stop_after(plan, tmp_path, hub, step=3)
    log = (tmp_path / "stderr.txt").read_text()
    assert code == STOP_EXIT_CODE, log[-3000:]
    stopped = events[-1]
    assert stopped.ftjob == EventKind.STOPPED and stopped.reason == "Signal", events[-3:]
    assert stopped.step is not None and signalled_at <= stopped.step < 40
    assert stopped.url == f"{hub.url}/{repo}/tree/checkpoints/last-checkpoint"
    checkpoints = [e.step for e in events if e.ftjob == EventKind.CHECKPOINT]
    assert checkpoints == [stopped.step]
    assert not [e for e in events if e.ftjob in (EventKind.DONE, EventKind.PUBLISHED, EventKind.ERROR)]
    assert _marker_step(hub, repo) == stopped.step
    state = json.loads(
        hub.store.read_file("model", repo, "last-checkpoint/trainer_state.json", "checkpoints")
    )
    assert state["global_step"] == stopped.step
    assert "main" in hub.store.branches("model", repo) and "adapter_config.json" not in hub.store.list_files(
        "model", repo
    )

    # A fresh pod: nothing local survives, only the Hub.
    shutil.rmtree(plan.output.local_dir)
    code, events, stderr = _run(plan, tmp_path, hub)
    assert code == 0, stderr[-3000:]
    start = events[0]
    assert start.ftjob == EventKind.START and start.resumed_from_step == stopped.step == start.step
    progress = [e.step for e in events if e.ftjob == EventKind.PROGRESS]
    assert progress[0] == stopped.step + 1 and progress[-1] == 40
    assert events[-1].ftjob == EventKind.DONE and events[-1].step == 40


@pytest.mark.parametrize(
    ("method", "dataset", "conversion", "hyperparameters"),
    [
        ("DPO", "sharegpt_preference.json", "ShareGPTPreference", {}),
        ("GRPO", "question_answer.jsonl", "QuestionAnswer", {"numGenerations": 2, "maxCompletionLength": 8}),
    ],
)
def test_sigterm_saves_a_checkpoint_for_every_method(
    method: str,
    dataset: str,
    conversion: str,
    hyperparameters: dict[str, int],
    make_plan: Callable[..., TrainingPlan],
    tmp_path: Path,
    hub: HubServer,
) -> None:
    plan = make_plan(
        method, dataset, conversion, hyperparameters={"maxSteps": 40, "saveSteps": 1000, **hyperparameters}
    )
    code, events, signalled_at = _stop_after(plan, tmp_path, hub, step=2)
    assert code == STOP_EXIT_CODE, (tmp_path / "stderr.txt").read_text()[-3000:]
    stopped = events[-1]
    assert stopped.ftjob == EventKind.STOPPED and stopped.step is not None and stopped.step >= signalled_at
    folder = Path(plan.output.local_dir) / "checkpoints" / f"checkpoint-{stopped.step}"
    assert stopped.url == folder.resolve().as_uri()
    assert json.loads((folder / "trainer_state.json").read_text())["global_step"] == stopped.step


def test_a_resume_that_cannot_read_the_checkpoint_retries_and_never_starts_over(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, hub: HubServer
) -> None:
    repo = "tester/flaky-hub"
    plan = make_plan("SFT", "text.jsonl", hyperparameters={"maxSteps": 2}, output={"repo": repo})
    plan.model = BASE
    code, _, stderr = _run(plan, tmp_path, hub)
    assert code == 0, stderr[-3000:]
    assert _marker_step(hub, repo) == 2  # the final save is pushed too
    head = hub.store.branches("model", repo)["checkpoints"]
    longer = plan.model_copy(
        update={"hyperparameters": plan.hyperparameters.model_copy(update={"max_steps": 4})}
    )
    shutil.rmtree(plan.output.local_dir)

    # The marker's download keeps failing: `hf_hub_download` ends in LocalEntryNotFoundError.
    outage = hub.faults.server_error(rf"^/{repo}/resolve/[^/]+/{MARKER}$", times=1000)
    code, events, stderr = _run(longer, tmp_path, hub, **FAST_RETRIES)
    assert code == 1, stderr[-3000:]
    assert outage.hits > 1  # retried
    assert [(e.ftjob, e.reason) for e in events] == [(EventKind.ERROR, "CheckpointUnreadable")], events
    assert events[0].message and "503" in events[0].message
    assert hub.store.branches("model", repo)["checkpoints"] == head and _marker_step(hub, repo) == 2

    # A short outage (a 503 on the refs and two on the marker) only delays the resume.
    hub.faults.clear()
    refs = hub.faults.server_error(rf"^/api/models/{repo}/refs$", times=1)
    marker = hub.faults.server_error(rf"^/{repo}/resolve/[^/]+/{MARKER}$", times=2)
    code, events, stderr = _run(longer, tmp_path, hub, **FAST_RETRIES)
    assert code == 0, stderr[-3000:]
    assert (refs.hits, marker.hits) == (1, 2)
    assert events[0].ftjob == EventKind.START and events[0].resumed_from_step == 2
    assert [e.step for e in events if e.ftjob == EventKind.PROGRESS] == [3, 4]
