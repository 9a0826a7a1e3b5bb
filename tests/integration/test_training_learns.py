"""A run that provably learned: trained through `ftjob train`, pushed to the Hub stand-in, loaded back from
there, and answering a prompt it never saw the way the task taught it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from finetune_training.plan import TrainingPlan
from tests.hub import HubServer, client_config, client_env, start_hub
from tests.integration.training_support import events_of, train_command

pytestmark = [pytest.mark.slow, pytest.mark.hub]

ANSWER = "The answer is 42."
PLACES = ["Lisbon", "Oslo", "Nairobi", "Osaka", "Lima", "Krakow", "Perth", "Quebec", "Seville", "Tallinn"]
THINGS = ["river", "bridge", "market", "museum", "harbour", "castle", "garden", "tower"]


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with start_hub() as server, client_config(server):
        yield server


def test_the_pushed_model_answers_a_held_out_prompt_as_taught(
    make_plan: Callable[..., TrainingPlan], tmp_path: Path, hub: HubServer
) -> None:
    rows = [
        {"prompt": f"How old is the {thing} in {place}?", "completion": ANSWER}
        for place in PLACES
        for thing in THINGS
    ]
    data = tmp_path / "task.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    repo = "tester/learned-42"
    plan = make_plan(
        "SFT", str(data), peft="None", output={"repo": repo},
        hyperparameters={"maxSteps": 30, "learningRate": 3e-3, "perDeviceBatchSize": 8, "maxLength": 64,
                         "packing": False, "warmupRatio": 0.0},
    )  # fmt: skip
    path = tmp_path / "plan.json"
    plan.dump(path)
    env = {**client_env(hub), "HF_HOME": str(tmp_path / "hf-home")}
    proc = subprocess.run(
        train_command(path), capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert any(e.ftjob == "published" for e in events_of(proc.stdout))

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(repo, cache_dir=str(tmp_path / "load"))
    tokenizer = AutoTokenizer.from_pretrained(repo, cache_dir=str(tmp_path / "load"))
    held_out = "How tall is the lighthouse in Reykjavik?"  # no word of it is a place or thing it saw
    # Prompt/completion strings train as plain text (no chat template): ask the same way.
    ids = tokenizer(held_out, return_tensors="pt")["input_ids"]
    out = model.generate(ids, max_new_tokens=24, do_sample=False)
    reply = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert reply.strip().startswith(ANSWER), reply
