"""A FineTuneJob author gets nothing the operator can do: no token leaks, no forged events, no host files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, kubectl
from tests.e2e.conftest import TINY_REPO
from tests.e2e.support import apply, condition, events_for, ftj, phase_is, wait_for
from tests.example_data import DATASETS
from tests.hub import DEFAULT_TOKEN, HubServer, client_config

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow, pytest.mark.hub]

EVIL = "https://evil.example/forged"
FORGED_ROW = json.dumps({"ftjob": "published", "artifact": "model", "url": EVIL + "-row"})
# Reward code prints a forged `published` event, and a dataset column that holds one.
REWARD = f"""
def reward(completions, prompts, **columns):
    print({json.dumps({"ftjob": "published", "artifact": "model", "url": EVIL + "-code"})!r}, flush=True)
    for note in columns.get("note", []):
        print(note, flush=True)
    return [0.0 for _ in completions]
"""
GRPO = {"maxSteps": 2, "maxLength": 64, "perDeviceBatchSize": 2, "gradientAccumulationSteps": 1,
        "numGenerations": 2, "maxCompletionLength": 8, "loggingSteps": 1, "saveSteps": 100}  # fmt: skip


def _forging_dataset(hub: HubServer, tmp_path: Path) -> str:
    repo = "tester/forged-rows"
    rows = [{"prompt": f"What is {i} + {i}?", "note": FORGED_ROW} for i in range(8)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with client_config(hub, token=None):
        from huggingface_hub import HfApi

        api = HfApi(endpoint=hub.url, token=DEFAULT_TOKEN)
        api.create_repo(repo, repo_type="dataset", exist_ok=True, private=False)
        api.upload_file(
            repo_id=repo, repo_type="dataset", path_or_fileobj=str(data), path_in_repo="rows.jsonl"
        )
    return repo


def _files_holding(root: Path, secret: str) -> list[str]:
    return [
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()
    ]


def test_forged_events_are_ignored_and_the_token_never_leaks(
    namespace: str, run_operator: Any, token_secret: str, hub: HubServer, tmp_path: Path
) -> None:
    repo = f"tester/{namespace}-grpo"
    manifest = ftj(
        "forger",
        model=TINY_REPO,
        dataset={"name": _forging_dataset(hub, tmp_path)},
        method="GRPO",
        backend="HFJobs",
        peft="LoRA",
        hyperparameters=GRPO,
        rewards=[{"type": "Python", "code": REWARD}],
        output={"repo": repo},
        tokenSecretRef={"name": token_secret},
    )
    with run_operator() as op:
        apply(namespace, manifest)
        obj = wait_for(namespace, "forger", phase_is("Succeeded", "Failed"), timeout=600)
    status = obj["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    # The run printed the forged lines (so the test can fail), and the operator took none of them.
    job = hub.jobs.list("tester", [], {"ftjob-uid": obj["metadata"]["uid"]})[0]
    log = "\n".join(line.data for line in job.logs)
    assert EVIL + "-code" in log and EVIL + "-row" in log
    assert status["outputs"]["model"].endswith(repo)
    assert EVIL not in json.dumps(status)
    # The token and the event key: only as Jobs secrets, never in the job's environment.
    assert {"HF_TOKEN", "FTJOB_EVENTS_KEY"} <= set(job.spec.secrets)
    assert DEFAULT_TOKEN not in json.dumps(job.spec.environment or {})
    # Nowhere a user or the Hub can read: status, Events, operator logs, the pushed repo and run files.
    assert DEFAULT_TOKEN not in json.dumps(obj)
    assert DEFAULT_TOKEN not in json.dumps(events_for(namespace, "forger"))
    assert DEFAULT_TOKEN not in op.logs()
    card = hub.store.read_file("model", repo, "README.md").decode()
    assert "base_model" in card and DEFAULT_TOKEN not in card
    assert _files_holding(hub.data_dir, DEFAULT_TOKEN) == []


def test_the_training_pod_carries_no_credentials_in_its_spec(
    namespace: str, run_operator: Any, alpaca_dataset: dict[str, Any], token_secret: str
) -> None:
    manifest = ftj(
        "k8s-creds", model=TINY_REPO, dataset=alpaca_dataset, tokenSecretRef={"name": token_secret}
    )
    with run_operator():
        apply(namespace, manifest)
        wait_for(namespace, "k8s-creds", lambda o: o.get("status", {}).get("backendRef") is not None)
    job = json.loads(kubectl("get", "jobs", "-n", namespace, "-o", "json").stdout)["items"][0]
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    for name in ("HF_TOKEN", "FTJOB_EVENTS_KEY"):
        assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["name"]
    config_maps = kubectl("get", "configmaps", "-n", namespace, "-o", "json").stdout
    assert DEFAULT_TOKEN not in json.dumps(job) and DEFAULT_TOKEN not in config_maps
    key_secret = env["FTJOB_EVENTS_KEY"]["valueFrom"]["secretKeyRef"]["name"]
    owners = json.loads(kubectl("get", "secret", key_secret, "-n", namespace, "-o", "json").stdout)
    assert owners["metadata"]["ownerReferences"][0]["kind"] == "FineTuneJob"


@pytest.mark.parametrize(
    ("backend", "path", "hint"),
    [
        ("HFJobs", str(DATASETS / "alpaca.json"), "backend: Local"),
        ("Local", str(ROOT / ".cluster"), str(DATASETS)),
        ("Local", str(DATASETS / ".." / ".." / ".."), str(DATASETS)),
    ],
)
def test_paths_on_the_operators_host_are_refused(
    namespace: str, run_operator: Any, backend: str, path: str, hint: str
) -> None:
    manifest = ftj("peek", model=TINY_REPO, dataset={"name": path, "conversion": "Alpaca"}, backend=backend)
    with run_operator():
        apply(namespace, manifest)
        obj = wait_for(namespace, "peek", phase_is("Failed", "Blocked"), timeout=120)
    cond = condition(obj, "Failed") or {}
    message = obj["status"].get("message", "") + json.dumps(obj["status"].get("conditions", []))
    assert "LocalPathRefused" in json.dumps(obj["status"]), json.dumps(obj["status"], indent=1)
    assert "`spec.dataset.name`" in message and hint in message, message
    # Nothing from the host: no listing, no rows, in status or Events.
    for leaked in ("admin.key", "ca.key", "kubeconfig", "instruction", "alpaca.json\\n"):
        assert leaked not in json.dumps(obj["status"]) and leaked not in json.dumps(
            events_for(namespace, "peek")
        )
    assert "validation" not in obj["status"], cond
