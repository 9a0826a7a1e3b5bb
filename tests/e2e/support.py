"""Helpers for end-to-end tests: apply FineTuneJob YAML, read it back, wait for status, as a user would."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import yaml

from tests.conftest import kubectl


def apply(namespace: str, manifest: dict[str, Any] | str) -> None:
    """`kubectl apply` a manifest (dict or YAML text)."""
    text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
    kubectl("apply", "-n", namespace, "-f", "-", input=text)


def get_ftj(namespace: str, name: str) -> dict[str, Any]:
    """The FineTuneJob as `kubectl get -o json` shows it."""
    return json.loads(kubectl("get", "ftj", name, "-n", namespace, "-o", "json").stdout)


def wait_for(
    namespace: str,
    name: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 120.0,
    seen: list[str] | None = None,
) -> dict[str, Any]:
    """Poll the FineTuneJob until predicate(obj) holds; records the phases seen on the way."""
    deadline = time.monotonic() + timeout
    obj: dict[str, Any] = {}
    while time.monotonic() < deadline:
        obj = get_ftj(namespace, name)
        phase = obj.get("status", {}).get("phase")
        if seen is not None and phase and (not seen or seen[-1] != phase):
            seen.append(phase)
        if predicate(obj):
            return obj
        time.sleep(0.5)
    status = dict(obj.get("status", {}))
    brief = {
        k: status.pop(k) for k in ("phase", "message", "conditions", "progress", "backendRef") if k in status
    }
    raise AssertionError(f"timed out; last status: {json.dumps(brief, indent=1)[:4000]}")


def phase_is(*phases: str) -> Callable[[dict[str, Any]], bool]:
    """Predicate: the job's phase is one of these."""
    return lambda obj: obj.get("status", {}).get("phase") in phases


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    """The condition of that type in the object's status."""
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None)


def events_for(namespace: str, name: str) -> list[dict[str, Any]]:
    """Events whose involved object is the FineTuneJob."""
    out = kubectl(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}", "-o", "json"
    )
    return list(json.loads(out.stdout)["items"])


def jobs_in(namespace: str) -> list[dict[str, Any]]:
    """batch/v1 Jobs in the namespace."""
    return list(json.loads(kubectl("get", "jobs", "-n", namespace, "-o", "json").stdout)["items"])


def ftj(
    name: str,
    *,
    model: str,
    dataset: dict[str, Any],
    method: str = "SFT",
    backend: str = "Kubernetes",
    **spec: Any,
) -> dict[str, Any]:
    """A FineTuneJob manifest."""
    return {
        "apiVersion": "finetune.dev/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {"model": {"name": model}, "dataset": dataset, "method": method, "backend": backend, **spec},
    }
