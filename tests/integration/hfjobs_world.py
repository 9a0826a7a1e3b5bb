"""The operator's reconcile loop with the real HF Jobs backend, against the Hub stand-in.

Validation and planning are stubbed (a ready dataset, a `cpu-basic` plan); everything from submit onwards is the
product's code and the real `huggingface_hub` client: find, submit, poll, log reading and the phase machine.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from finetune_operator.api.resource import FineTuneJob
from finetune_operator.api.status import MethodVerdict, PlanSummary, ValidationSummary, Verdict
from finetune_operator.backends.base import JobTarget
from finetune_operator.backends.hfjobs import HFJobsBackend
from finetune_operator.config import OperatorConfig
from finetune_operator.lifecycle.conditions import get_condition
from finetune_operator.lifecycle.reconcile import Deps, JobMemory, Outcome, reconcile
from finetune_operator.metrics import OperatorMetrics
from finetune_training.plan import PeftMode
from tests.hub import DEFAULT_TOKEN, HubServer

SECRET = "hf-token"
RUNTIME_ERROR = (  # a run that fails in the runtime: its signed error event, then exit 1
    "import os, sys\n"
    "from finetune_training.events import EventKind, RuntimeEvent, emit\n"
    "print('Traceback (most recent call last): ...', flush=True)\n"
    "emit(RuntimeEvent(ftjob=EventKind.ERROR, reason='DatasetInvalid', message='row 3 has no `text`'))\n"
    "sys.exit(1)\n"
)


class Secrets:
    """The cluster's Secrets, as the reconcile loop reads them: one token Secret, kept cancel tokens."""

    def __init__(self) -> None:
        self.kept: dict[tuple[str, str], str] = {}

    def read_secret_value(self, namespace: str, name: str, key: str) -> str:
        return DEFAULT_TOKEN

    def keep_cancel_token(self, namespace: str, uid: str, token: str) -> None:
        self.kept[namespace, uid] = token

    def read_cancel_token(self, namespace: str, uid: str) -> str | None:
        return self.kept.get((namespace, uid))

    def drop_cancel_token(self, namespace: str, uid: str) -> None:
        self.kept.pop((namespace, uid), None)


class _Report:
    def summary(self) -> ValidationSummary:
        return ValidationSummary(
            dataset="tester/data", rows=100, format="alpaca", verdicts=[self.verdict("SFT")]
        )

    def verdict(self, method: str) -> MethodVerdict:
        return MethodVerdict(method=method, verdict=Verdict.READY, reason="checked")


@dataclass
class _Decision:
    summary: PlanSummary


def _plan(spec: Any, **_: Any) -> _Decision:
    return _Decision(
        PlanSummary(
            backend="HFJobs",
            target="HFJobs/cpu-basic",
            flavor="cpu-basic",
            peft=PeftMode.LORA,
            memory_gib=1.0,
            estimated_hours=0.1,
            estimatedCostUSD=0.01,
            suggested_timeout="2h",
            reason="test",
        )
    )


@dataclass
class HFJobsWorld:
    """One FineTuneJob on `backend: HFJobs`, stepped the way the kopf handlers step it."""

    hub: HubServer
    backend: HFJobsBackend
    deps: Deps
    body: dict[str, Any]
    memory: JobMemory = field(default_factory=JobMemory)
    """What kopf's per-object memo holds for the job between passes."""

    @property
    def uid(self) -> str:
        return str(self.body["metadata"]["uid"])

    def step(self) -> Outcome:
        """One handler or timer pass: a fresh read in, the status written back."""
        outcome = reconcile(FineTuneJob.from_body(self.body), self.deps, self.memory)
        self.body["status"] = outcome.status.wire()
        return outcome

    def later(self) -> Outcome:
        """A timer pass once every backoff has run out."""
        if self.memory.backoff is not None:
            self.memory.backoff = dataclasses.replace(self.memory.backoff, not_before=0.0)
        return self.step()

    def until(self, phase: str | Callable[[], bool], timeout: float = 60.0) -> None:
        """Step every 0.3 s until the job reaches `phase` (or the check holds)."""
        done = phase if callable(phase) else lambda: self.phase == phase
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, self.body.get("status")
            time.sleep(0.3)
            self.later()

    @property
    def phase(self) -> str:
        return str(self.body.get("status", {}).get("phase", ""))

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.body["status"])

    def condition(self, type_: str) -> Any:
        return get_condition(FineTuneJob.from_body(self.body).status, type_)

    def target(self, attempt: int = 1) -> JobTarget:
        """What the backend is handed for this FineTuneJob's `attempt`."""
        return JobTarget(namespace="ns", name="hub-life", uid=self.uid, attempt=attempt, token=DEFAULT_TOKEN)

    def hub_jobs(self) -> list[Any]:
        """Every HF Job of this FineTuneJob the Hub holds (not the lagging listing: the ground truth)."""
        return self.hub.jobs.list("tester", [], {"ftjob-uid": self.uid})


def hfjobs_world(hub: HubServer, command: list[str], **spec: Any) -> HFJobsWorld:
    """A fresh FineTuneJob (its own UID) whose HF Job runs `command` on the stand-in."""
    config = OperatorConfig(
        enabled_backends=[],
        hf_endpoint=hub.url,
        trainer_image="python:3.12",
        trainer_command=command,
        metrics_port=0,
        max_attempts=3,
        operator_namespace="ftjob-system",
    )
    backend = HFJobsBackend(config)
    deps = Deps(
        config=config,
        kube=Secrets(),  # type: ignore[arg-type]
        backends={"HFJobs": backend},  # type: ignore[dict-item]
        metrics=OperatorMetrics(),
        validate=lambda *_, **__: _Report(),
        plan=_plan,
        status_writer=None,  # type: ignore[arg-type]  # the world writes the status itself (`step`)
    )
    body = {
        "apiVersion": "finetune.dev/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "hub-life", "namespace": "ns", "uid": str(uuid.uuid4()), "generation": 1},
        "spec": {
            "model": {"name": "tester/tiny"},
            "dataset": {"name": "tester/data"},
            "method": "SFT",
            "backend": "HFJobs",
            "tokenSecretRef": {"name": SECRET},
            **spec,
        },
    }
    return HFJobsWorld(hub, backend, deps, body)
