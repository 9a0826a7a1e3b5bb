"""Attempts: a run that dies without the runtime's own error, a suspended run and a run stopped by the
budget guard each resume from the last Hub checkpoint as a new attempt (real tiny training, Local)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import kubectl
from tests.e2e.conftest import TINY_REPO
from tests.e2e.support import apply, events_for, ftj, get_ftj, phase_is, wait_for
from tests.hub import HubServer

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow, pytest.mark.hub]

TRAINING = {"maxSteps": 40, "maxLength": 128, "perDeviceBatchSize": 2, "gradientAccumulationSteps": 1,
            "loggingSteps": 1, "saveSteps": 3}  # fmt: skip


def local_job(
    name: str, namespace: str, dataset: dict[str, Any], token_secret: str, **spec: Any
) -> dict[str, Any]:
    """A LoRA run of the tiny model on the Local backend that pushes `tester/<namespace>-<name>`."""
    return ftj(
        name,
        model=TINY_REPO,
        dataset=dataset,
        backend="Local",
        peft="LoRA",
        hyperparameters=TRAINING,
        output={"repo": f"tester/{namespace}-{name}"},
        tokenSecretRef={"name": token_secret},
        **spec,
    )


def runtime_events(folder: Path, kind: str) -> list[dict[str, Any]]:
    """The runtime's `kind` events in an attempt's log."""
    lines = (folder / "train.log").read_text().splitlines()
    return [json.loads(line[line.index("{") :]) for line in lines if f'"ftjob":"{kind}"' in line]


def test_a_killed_local_run_resumes_from_its_checkpoint_as_attempt_two(
    namespace: str, run_operator: Any, alpaca_dataset: dict[str, Any], token_secret: str, hub: HubServer
) -> None:
    # Long enough that the kill lands mid-run even when the status lags the run on a loaded machine.
    manifest = local_job("retry", namespace, alpaca_dataset, token_secret)
    manifest["spec"]["hyperparameters"] = {**TRAINING, "maxSteps": 160}
    with run_operator():
        apply(namespace, manifest)
        obj = wait_for(
            namespace,
            "retry",
            lambda o: (o.get("status", {}).get("progress") or {}).get("step", 0) >= 5,
            timeout=300,
        )
        first = Path(obj["status"]["backendRef"]["url"].removeprefix("file://")).parent
        # The host kills the run (no SIGTERM, no checkpoint on the way out, no exit code recorded).
        os.killpg(int((first / "pid").read_text()), signal.SIGKILL)
        obj = wait_for(namespace, "retry", phase_is("Succeeded", "Failed"), timeout=600)
    status = obj["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert status["attempts"] == 2 and status["backendRef"]["attempt"] == 2
    assert "Retrying" in {e["reason"] for e in events_for(namespace, "retry")}
    second = Path(status["backendRef"]["url"].removeprefix("file://")).parent
    assert second != first
    starts = runtime_events(second, "start")
    assert starts and 3 <= starts[0].get("resumedFromStep", 0) < 160, starts
    assert status["progress"]["step"] == 160


def test_suspending_a_running_job_checkpoints_and_resuming_continues_from_there(
    namespace: str, run_operator: Any, alpaca_dataset: dict[str, Any], token_secret: str, hub: HubServer
) -> None:
    manifest = local_job("pause", namespace, alpaca_dataset, token_secret)
    with run_operator():
        apply(namespace, manifest)
        obj = wait_for(
            namespace,
            "pause",
            lambda o: (o.get("status", {}).get("progress") or {}).get("step", 0) >= 3,
            timeout=300,
        )
        first = Path(obj["status"]["backendRef"]["url"].removeprefix("file://")).parent
        kubectl("patch", "ftj", "pause", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":true}}')
        obj = wait_for(namespace, "pause", phase_is("Suspended"), timeout=60)
        # The runtime saw SIGTERM, saved and pushed a checkpoint at the step it reached, and stopped.
        wait_for(namespace, "pause", lambda o: (first / "exit_code").exists(), timeout=120)
        stopped = runtime_events(first, "stopped")
        assert stopped and stopped[0]["step"] >= 3, (first / "train.log").read_text()[-3000:]
        kubectl("patch", "ftj", "pause", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":false}}')
        obj = wait_for(namespace, "pause", phase_is("Succeeded", "Failed"), timeout=600)
    status = obj["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert status["attempts"] == 2
    second = Path(status["backendRef"]["url"].removeprefix("file://")).parent
    starts = runtime_events(second, "start")
    assert starts[0].get("resumedFromStep") == stopped[0]["step"]


def test_a_run_about_to_pass_its_budget_stops_at_a_checkpoint_and_resumes_when_the_budget_is_raised(
    namespace: str, run_operator: Any, alpaca_dataset: dict[str, Any], token_secret: str, hub: HubServer
) -> None:
    manifest = local_job("budget", namespace, alpaca_dataset, token_secret, budget={"maxCostUSD": 1000})
    # The host costs a cent a second; the guard keeps one poll (1 s) + 3 s for the stop in hand.
    with run_operator(FTJOB_LOCAL_USD_PER_HOUR="36", FTJOB_BUDGET_STOP_MARGIN_SECONDS="3"):
        apply(namespace, manifest)
        obj = wait_for(
            namespace,
            "budget",
            lambda o: (o.get("status", {}).get("progress") or {}).get("step", 0) >= 3,
            timeout=300,
        )
        first = Path(obj["status"]["backendRef"]["url"].removeprefix("file://")).parent
        spent = obj["status"]["cost"]["actualUSD"]
        assert spent > 0 and obj["status"]["cost"]["hourlyPriceUSD"] == 36
        # The user lowers the budget to just above what is spent: the run must stop before passing it.
        cap = round(spent + 0.02, 2)
        patch = json.dumps({"spec": {"budget": {"maxCostUSD": cap}}})
        kubectl("patch", "ftj", "budget", "-n", namespace, "--type=merge", "-p", patch)
        obj = wait_for(namespace, "budget", phase_is("Blocked"), timeout=60)
        blocked = next(c for c in obj["status"]["conditions"] if c["type"] == "Blocked")
        assert blocked["reason"] == "BudgetExceeded" and "maxCostUSD" in blocked["message"], blocked
        wait_for(namespace, "budget", lambda o: (first / "exit_code").exists(), timeout=120)
        stopped = runtime_events(first, "stopped")
        assert stopped and stopped[0]["step"] >= 3, (first / "train.log").read_text()[-3000:]
        assert get_ftj(namespace, "budget")["status"]["phase"] == "Blocked", "no new attempt on that budget"
        patch = json.dumps({"spec": {"budget": {"maxCostUSD": 1000}}})
        kubectl("patch", "ftj", "budget", "-n", namespace, "--type=merge", "-p", patch)
        obj = wait_for(namespace, "budget", phase_is("Succeeded", "Failed"), timeout=600)
    status = obj["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert status["attempts"] == 2
    assert "BudgetExceeded" in {e["reason"] for e in events_for(namespace, "budget")}
    second = Path(status["backendRef"]["url"].removeprefix("file://")).parent
    starts = runtime_events(second, "start")
    assert starts[0].get("resumedFromStep") == stopped[0]["step"]
    cost = status["cost"]
    assert cost["earlierSeconds"] > 0 and cost["runningSeconds"] > cost["earlierSeconds"]
    assert cost["actualUSD"] == pytest.approx(cost["runningSeconds"] / 100, abs=0.01)
