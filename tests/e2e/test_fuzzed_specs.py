"""Randomly mutated FineTuneJobs through the real API server and the operator: every spec is either refused at
admission with a message, or reaches a status the user can read. None is silently retried forever."""

from __future__ import annotations

import copy
import os
import random
import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.conftest import kubectl
from tests.e2e.conftest import ALPACA_REPO, TINY_REPO

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

SEED = int(os.environ.get("FTJOB_FUZZ_SEED", "20261206"))
COUNT = int(os.environ.get("FTJOB_FUZZ_COUNT", "240"))

BASE: dict[str, Any] = {
    "model": {"name": TINY_REPO},
    "dataset": {"name": ALPACA_REPO, "split": "train", "conversion": "Alpaca"},
    "method": "SFT",
    "peft": "Auto",
    "hyperparameters": {
        "epochs": 1,
        "maxLength": 256,
        "learningRate": 2e-4,
        "extraArgs": {"warmup_ratio": 0.1, "lr_scheduler_type": "cosine"},
    },
    "backend": "Kubernetes",
    "budget": {"maxCostUSD": 5, "timeout": "1h"},
    "output": {"repo": "tester/fuzzed", "private": True, "gguf": ["Q4_K_M"]},
    "tokenSecretRef": {"name": "hf-token"},
}
ODD_VALUES: list[Any] = [
    "", " ", "  x  ", "a b", "/", "Qwen/", "../..", "/etc", "ü🙂", "x" * 300, "1h", "-1h", "NaN", "null",
    0, -1, 1, 2**31, 2**63 - 1, 1e-12, 1e308, -0.5, True, False, None,
    [], {}, [1, [2]], {"a": {"b": 1}}, {"name": " "}, [{"type": "Python", "code": "x"}],
]  # fmt: skip


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (dict keys and list indexes), the root excluded."""
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


def mutate(spec: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One to three random edits: an odd value, a value wrapped in a list or a map, a key removed or added."""
    spec = copy.deepcopy(spec)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(paths(spec))
        parent = spec
        for key in path[:-1]:
            parent = parent[key]
        leaf = path[-1]
        kind = rng.random()
        if kind < 0.55:
            parent[leaf] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif kind < 0.75:
            parent[leaf] = rng.choice([[parent[leaf]], {"nested": parent[leaf]}])
        elif kind < 0.9 and isinstance(parent, dict):
            del parent[leaf]
        elif isinstance(parent, dict):
            parent[rng.choice(["unknownField", "Model", "x-extra"])] = rng.choice(ODD_VALUES)
    # Bounded work: the operator validates and plans each job, nothing is submitted.
    spec["suspend"] = True
    return spec


def test_fuzzed_specs_are_refused_with_a_message_or_reach_a_status(
    namespace: str, run_operator: Any, token_secret: str, api_client: Any
) -> None:
    api = client.CustomObjectsApi(api_client)
    rng = random.Random(SEED)
    refused: dict[str, str] = {}
    admitted: list[str] = []
    with run_operator():
        for i in range(COUNT):
            name = f"fuzz-{i:03d}"
            body = {
                "apiVersion": "finetune.dev/v1alpha1",
                "kind": "FineTuneJob",
                "metadata": {"name": name},
                "spec": mutate(BASE, rng),
            }
            try:
                api.create_namespaced_custom_object(
                    "finetune.dev", "v1alpha1", namespace, "finetunejobs", body
                )
                admitted.append(name)
            except ApiException as exc:
                assert exc.status in (400, 422), f"{name}: {exc.status} {exc.body}"
                refused[name] = exc.body or ""
        deadline = time.monotonic() + 420
        unanswered = set(admitted)
        while unanswered and time.monotonic() < deadline:
            items = api.list_namespaced_custom_object("finetune.dev", "v1alpha1", namespace, "finetunejobs")
            for obj in items["items"]:
                status = obj.get("status") or {}
                if status.get("phase") and status.get("observedGeneration") == obj["metadata"]["generation"]:
                    unanswered.discard(obj["metadata"]["name"])
            time.sleep(2)
        final = {
            obj["metadata"]["name"]: obj
            for obj in api.list_namespaced_custom_object(
                "finetune.dev", "v1alpha1", namespace, "finetunejobs"
            )["items"]
        }
        # Deleted while the operator runs (it releases each finalizer), so no test after this one shares
        # the control plane with hundreds of objects being torn down.
        kubectl("delete", "ftj", "--all", "-n", namespace, "--timeout=100s", check=False)
    # Both outcomes occur, or the mutations tested nothing.
    assert len(refused) > COUNT // 10 and len(admitted) > COUNT // 10, (len(refused), len(admitted))
    for name, message in refused.items():
        assert "spec" in message, f"{name} was refused without naming the field: {message[:300]}"
    assert not unanswered, {n: final[n].get("status") for n in sorted(unanswered)[:5]}
    for name in admitted:
        status = final[name]["status"]
        if status["phase"] in ("Failed", "Blocked"):
            assert status.get("message"), f"{name} is {status['phase']} with no message: {status}"
    readable = [n for n in admitted if final[n]["status"]["phase"] != "Failed"]
    assert readable, (
        "no mutated spec was good enough to plan: the mutations are too harsh to test the operator"
    )
