"""Checkpoints, resuming and publishing through the Hub stand-in, with `ftjob train` as a subprocess.

The base model is uploaded to the stand-in and trained from its repo id, as a real job would.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from finetune_training.events import EventKind, RuntimeEvent, parse_line
from finetune_training.plan import TrainingPlan
from tests.hub import HubServer, client_config, client_env, start_hub
from tests.integration.training_support import events_of, train_command

pytestmark = [pytest.mark.slow, pytest.mark.hub]

BASE = "tester/tiny-base"
JOB_YAML = "model: tester/tiny-base\nmethod: SFT\ndataset: {name: alpaca}\n"


@pytest.fixture
def hub(tiny_model: Path) -> Iterator[HubServer]:
    """A fresh stand-in holding the tiny model as `tester/tiny-base`."""
    from huggingface_hub import HfApi

    with start_hub() as server, client_config(server):
        api = HfApi()
        api.create_repo(BASE, exist_ok=True)
        api.upload_folder(repo_id=BASE, folder_path=str(tiny_model))
        yield server


def _start(plan: TrainingPlan, tmp_path: Path, hub: HubServer) -> subprocess.Popen[str]:
    path = tmp_path / "plan.json"
    plan.dump(path)
    return subprocess.Popen(
        train_command(path),
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "stderr.txt").open("w"),
        text=True,
        env=_env(hub, tmp_path),
        cwd=tmp_path,
    )


def _env(hub: HubServer, tmp_path: Path) -> dict[str, str]:
    """The stand-in's client environment, with a Hugging Face cache of this test's own."""
    return {**client_env(hub), "HF_HOME": str(tmp_path / "hf-home")}


def _run(plan: TrainingPlan, tmp_path: Path, hub: HubServer) -> tuple[int, list[RuntimeEvent], str]:
    path = tmp_path / "plan.json"
    plan.dump(path)
    proc = subprocess.run(
        train_command(path),
        capture_output=True,
        text=True,
        env=_env(hub, tmp_path),
        cwd=tmp_path,
        timeout=600,
    )
    return proc.returncode, events_of(proc.stdout), proc.stderr


def test_killed_run_resumes_from_the_last_pushed_checkpoint(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, hub: HubServer
) -> None:
    plan = make_plan(
        "SFT",
        "alpaca.json",
        "Alpaca",
        hyperparameters={"maxSteps": 30, "saveSteps": 2},
        output={"repo": "tester/resume-model"},
    )
    plan.model = BASE
    proc = _start(plan, tmp_path, hub)
    assert proc.stdout is not None
    pushed: RuntimeEvent | None = None
    for line in proc.stdout:
        event = parse_line(line)
        if event is not None and event.ftjob == EventKind.CHECKPOINT:
            pushed = event
            proc.kill()  # as a preempted pod or job dies: no chance to clean up
            break
    proc.wait(timeout=60)
    log = (tmp_path / "stderr.txt").read_text()
    assert pushed is not None and pushed.step == 2, (
        f"no checkpoint was pushed before the kill:\n{log[-3000:]}"
    )
    assert pushed.url and pushed.url.startswith(hub.url) and "/tree/checkpoints/" in pushed.url
    branch_files = hub.store.list_files("model", "tester/resume-model", revision="checkpoints")
    assert "last-checkpoint/ftjob-checkpoint.json" in branch_files
    assert "last-checkpoint/trainer_state.json" in branch_files

    # A fresh pod: nothing local survives, only the Hub.
    shutil.rmtree(plan.output.local_dir)
    code, events, stderr = _run(plan, tmp_path, hub)
    assert code == 0, stderr[-3000:]
    start = events[0]
    assert start.ftjob == EventKind.START and start.resumed_from_step is not None
    assert start.resumed_from_step >= 2 and start.resumed_from_step % 2 == 0
    assert start.step == start.resumed_from_step
    progress = [e.step for e in events if e.ftjob == EventKind.PROGRESS]
    assert progress[0] == start.resumed_from_step + 1 and progress[-1] == 30
    assert events[-1].ftjob == EventKind.DONE and events[-1].step == 30


def test_another_jobs_checkpoint_is_not_resumed(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, hub: HubServer
) -> None:
    plan = make_plan(
        "SFT",
        "text.jsonl",
        hyperparameters={"maxSteps": 2, "saveSteps": 2},
        output={"repo": "tester/shared"},
    )
    plan.model = BASE
    assert _run(plan, tmp_path, hub)[0] == 0
    other = plan.model_copy(update={"job": plan.job.model_copy(update={"uid": "someone-else"})})
    shutil.rmtree(plan.output.local_dir)
    code, events, stderr = _run(other, tmp_path, hub)
    assert code == 0, stderr[-3000:]
    assert events[0].resumed_from_step is None and events[0].step == 0


def test_publish_pushes_the_adapter_with_a_model_card(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, hub: HubServer
) -> None:
    plan = make_plan(
        "SFT",
        "alpaca.json",
        "Alpaca",
        output={"repo": "tester/support-bot", "pushCheckpoints": False},
        finetuneJobYaml=JOB_YAML,
    )
    plan.model = BASE
    code, events, stderr = _run(plan, tmp_path, hub)
    assert code == 0, stderr[-3000:]
    published = [e for e in events if e.ftjob == EventKind.PUBLISHED]
    assert [(e.artifact, e.url) for e in published] == [("model", f"{hub.url}/tester/support-bot")]
    assert not [e for e in events if e.ftjob == EventKind.CHECKPOINT and e.url and e.url.startswith(hub.url)]

    files = hub.store.list_files("model", "tester/support-bot")
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json"} <= set(files)
    assert "training_args.bin" not in files
    card = hub.store.read_file("model", "tester/support-bot", "README.md").decode()
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["base_model"] == BASE and meta["library_name"] == "peft"
    assert {"trl", "sft"} <= set(meta["tags"])
    assert "supervised fine-tuning (SFT)" in body and "LoRA (r=16, alpha=32)" in body
    assert "| learningRate |" in body and "| train_loss |" in body
    assert "trackio" in body and plan.tracking.run_name in body
    assert JOB_YAML.strip() in body


def test_publish_merges_and_pushes_gguf_files(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, hub: HubServer
) -> None:
    from finetune_training.gguf import GGUFError, find_tools

    try:
        find_tools()
    except GGUFError as e:
        pytest.skip(f"llama.cpp GGUF tools not built (run `make gguf-tools`): {e.message}")
    plan = make_plan(
        "SFT",
        "alpaca.json",
        "Alpaca",
        output={
            "repo": "tester/chat",
            "mergeAdapter": True,
            "gguf": ["F16", "Q4_K_M"],
            "pushCheckpoints": False,
        },
    )
    plan.model = BASE
    code, events, stderr = _run(plan, tmp_path, hub)
    assert code == 0, stderr[-3000:]
    gguf_urls = [e.url for e in events if e.ftjob == EventKind.PUBLISHED and e.artifact == "gguf"]
    assert gguf_urls == [
        f"{hub.url}/tester/chat-GGUF/blob/main/chat-F16.gguf",
        f"{hub.url}/tester/chat-GGUF/blob/main/chat-Q4_K_M.gguf",
    ]
    model_files = set(hub.store.list_files("model", "tester/chat"))
    assert "model.safetensors" in model_files and "adapter_config.json" not in model_files
    card = hub.store.read_file("model", "tester/chat", "README.md").decode()
    assert "library_name: transformers" in card
    gguf_files = set(hub.store.list_files("model", "tester/chat-GGUF"))
    assert {"chat-F16.gguf", "chat-Q4_K_M.gguf", "README.md"} <= gguf_files
    assert hub.store.read_file("model", "tester/chat-GGUF", "chat-Q4_K_M.gguf", "main")[:4] == b"GGUF"
