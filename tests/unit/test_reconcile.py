"""The phase machine alone: in-memory fakes for the backend, the cluster's Secrets, validation and planning.

Each test drives `reconcile` the way the kopf handlers do (a fresh read of the object in, the new status
out) and checks what a user relies on: nothing is submitted twice, terminal stays terminal for its
generation, fixable problems wait instead of failing, and a fixed spec or world heals the job.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from finetune_operator.api.resource import FineTuneJob
from finetune_operator.api.status import (
    MethodVerdict,
    Phase,
    PlanSummary,
    ValidationSummary,
    Verdict,
)
from finetune_operator.backends.base import JobTarget, LogCursor, WorkRef, WorkState, WorkStatus
from finetune_operator.cluster.rbac import forbidden
from finetune_operator.config import OperatorConfig
from finetune_operator.errors import RetryLater, SpecError
from finetune_operator.lifecycle.conditions import get_condition
from finetune_operator.lifecycle.reconcile import (
    Deps,
    JobMemory,
    Outcome,
    cancel_work,
    reconcile,
    reject_malformed,
)
from finetune_operator.metrics import OperatorMetrics
from finetune_training.events import EventKind, RuntimeEvent, emit
from finetune_training.plan import Conversion, PeftMode, TrainingPlan

UID = "0f9e8d7c-1234-5678-9abc-def012345678"


# -- fakes --------------------------------------------------------------------------------------------
@dataclass
class Work:
    ref: WorkRef
    plan: TrainingPlan
    state: WorkState = WorkState.QUEUED
    reason: str = ""
    message: str = ""
    preempted: bool = False
    lines: list[str] = field(default_factory=list)
    cancelled: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None
    events_key: str | None = None
    """The secret the run was given; the runtime signs its events with it."""


class FakeBackend:
    """An in-memory backend: work keyed by (uid, attempt), states set by the test."""

    kind = "Fake"
    needs_token = True
    watched = False
    collected_with_job = False  # remote work: the job holds the finalizer before it is submitted

    def __init__(self, *, retries_itself: bool = False) -> None:
        self.retries_itself = retries_itself
        self.works: dict[tuple[str, int], Work] = {}
        self.submissions = 0
        self.fail_submit: Exception | None = None
        self.cursors: list[LogCursor] = []
        """The cursor of each log read the monitor made."""

    def find(self, target: JobTarget) -> WorkRef | None:
        work = self.works.get((target.uid, target.attempt))
        return work.ref.model_copy() if work else None

    def submit(self, target: JobTarget, plan: TrainingPlan, timeout_seconds: int) -> WorkRef:
        if self.fail_submit is not None:
            raise self.fail_submit
        assert (target.uid, target.attempt) not in self.works, "submitted twice"
        assert plan.job.attempt == target.attempt
        self.submissions += 1
        ref = WorkRef(kind=self.kind, id=f"work-{target.attempt}", attempt=target.attempt)
        self.works[(target.uid, target.attempt)] = Work(ref, plan, events_key=target.events_key)
        return ref.model_copy()

    def work(self, attempt: int = 1) -> Work:
        return self.works[(UID, attempt)]

    def poll(self, target: JobTarget, ref: WorkRef) -> WorkStatus:
        work = self.work(ref.attempt or 1)
        return WorkStatus(
            state=work.state,
            reason=work.reason,
            message=work.message,
            preempted=work.preempted,
            started_at=work.started_at,
            ended_at=work.ended_at,
        )

    def logs(
        self,
        target: JobTarget,
        ref: WorkRef,
        *,
        follow: bool = False,
        tail: int | None = None,
        cursor: LogCursor | None = None,
    ) -> Iterator[str]:
        lines = self.work(ref.attempt or 1).lines
        if cursor is None:
            yield from lines
            return
        self.cursors.append(cursor)
        while cursor.lines < len(lines):  # a line-count cursor, as HF Jobs keeps
            cursor.lines += 1
            yield lines[cursor.lines - 1]

    def cancel(self, target: JobTarget, ref: WorkRef) -> None:
        work = self.work(ref.attempt or 1)
        work.cancelled = True

    def watch_from(self, seen: object) -> None:
        pass

    def link(self, ref: WorkRef) -> str | None:
        return ref.url


class FakeKube:
    """The cluster's Secrets: `secrets[name] = token`."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {"hf-token": "hf_test"}
        self.kept: dict[tuple[str, str], str] = {}
        self.reads = 0
        self.forgotten: list[str] = []

    def keep_cancel_token(self, namespace: str, uid: str, token: str) -> None:
        self.kept[namespace, uid] = token

    def read_cancel_token(self, namespace: str, uid: str) -> str | None:
        return self.kept.get((namespace, uid))

    def drop_cancel_token(self, namespace: str, uid: str) -> None:
        self.kept.pop((namespace, uid), None)

    def read_secret_value(self, namespace: str, name: str, key: str) -> str:
        self.reads += 1
        if name not in self.secrets:
            raise SpecError("TokenSecretNotFound", f"Secret `{name}` does not exist in `{namespace}`")
        return self.secrets[name]

    def forget_secret(self, namespace: str, name: str) -> None:
        self.forgotten.append(name)


class FakeReport:
    def __init__(self, verdict: Verdict, conversion: Conversion | None = None) -> None:
        self._verdict = MethodVerdict(method="SFT", verdict=verdict, reason="checked", conversion=conversion)

    def summary(self) -> ValidationSummary:
        return ValidationSummary(dataset="tester/data", rows=100, format="alpaca", verdicts=[self._verdict])

    def verdict(self, method: str) -> MethodVerdict:
        return self._verdict


class FakeValidator:
    """Ready once the spec names the conversion the data needs."""

    def __init__(self, needs: Conversion | None = None) -> None:
        self.needs = needs
        self.calls = 0

    def __call__(self, dataset: Any, **_: Any) -> FakeReport:
        self.calls += 1
        if self.needs is None or dataset.conversion == self.needs:
            return FakeReport(Verdict.READY)
        return FakeReport(Verdict.NEEDS_MAPPING, self.needs)


@dataclass
class FakeDecision:
    summary: PlanSummary


class FakePlanner:
    """A plan costing `cost` dollars; `error` makes planning raise instead."""

    def __init__(self, cost: float = 1.0, hourly_price: float = 0.0) -> None:
        self.cost = cost
        self.hourly_price = hourly_price
        self.nodes = 1
        self.error: SpecError | None = None
        self.calls = 0

    def __call__(self, spec: Any, **_: Any) -> FakeDecision:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return FakeDecision(
            PlanSummary(
                backend="Fake",
                target="Fake/cpu",
                peft=PeftMode.LORA,
                memory_gib=1.0,
                estimated_hours=1.0,
                estimatedCostUSD=self.cost,
                hourlyPriceUSD=self.hourly_price,
                suggested_timeout="1h",
                reason="test",
                nodes=self.nodes,
            )
        )


class FakeStatusWriter:
    """The API server's side of a handler pass (the handlers use it, `reconcile` never does): one body."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def read(self, namespace: str, name: str) -> dict[str, Any]:
        return self.body

    def patch_status(self, namespace: str, name: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.body["status"] = new


@dataclass
class World:
    backend: FakeBackend
    kube: FakeKube
    validator: FakeValidator
    planner: FakePlanner
    deps: Deps
    body: dict[str, Any]
    memory: JobMemory = field(default_factory=JobMemory)
    """What kopf's per-object memo holds for the job between passes."""

    def edit(self, **spec: Any) -> None:
        """A spec edit, as the API server records it: the generation moves."""
        self.body["spec"].update(spec)
        self.body["metadata"]["generation"] += 1

    def step(self) -> Outcome:
        """One handler or timer pass: a fresh read in, the status written back."""
        outcome = reconcile(FineTuneJob.from_body(self.body), self.deps, self.memory)
        self.body["status"] = outcome.status.wire()
        return outcome

    def later(self) -> Outcome:
        """A timer tick after every backoff has run out (the failure count is kept)."""
        if self.memory.backoff is not None:
            self.memory.backoff = dataclasses.replace(self.memory.backoff, not_before=0.0)
        return self.step()

    @property
    def phase(self) -> str:
        return str(self.body["status"]["phase"])

    def condition(self, type_: str) -> Any:
        return get_condition(FineTuneJob.from_body(self.body).status, type_)

    def emit(self, attempt: int = 1, *, key: str | None = None, **event: Any) -> None:
        """The run prints an event, signed as the runtime signs it (with the attempt's key, or `key`)."""
        work = self.backend.work(attempt)
        out = io.StringIO()
        emit(RuntimeEvent(**event), out, key=key or work.events_key)
        work.lines.append(out.getvalue())


@pytest.fixture
def world() -> World:
    backend = FakeBackend()
    kube = FakeKube()
    validator = FakeValidator()
    planner = FakePlanner()
    body: dict[str, Any] = {
        "apiVersion": "finetune.dev/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "demo", "namespace": "ns", "uid": UID, "generation": 1},
        "spec": {
            "model": {"name": "tester/tiny"},
            "dataset": {"name": "tester/data"},
            "method": "SFT",
            "tokenSecretRef": {"name": "hf-token"},
        },
    }
    deps = Deps(
        config=OperatorConfig(
            enabled_backends=[], metrics_port=0, max_attempts=3, operator_namespace="ftjob-system"
        ),
        kube=kube,  # type: ignore[arg-type]
        backends={"Fake": backend},  # type: ignore[dict-item]
        metrics=OperatorMetrics(),
        validate=validator,
        plan=planner,
        status_writer=FakeStatusWriter(body),  # type: ignore[arg-type]
    )
    return World(backend, kube, validator, planner, deps, body)


def run_to(world: World, phase: Phase, limit: int = 6) -> None:
    for _ in range(limit):
        if world.phase == phase:
            return
        world.later()
    assert world.phase == phase, world.body["status"]


# -- the happy path, and restart safety -------------------------------------------------------------------
def test_a_pass_that_takes_several_steps_posts_one_event_naming_each(world: World) -> None:
    # Validate, plan and submit in one pass: one Event (one API write), under the step that ended the pass.
    events = world.step().events
    assert [(e.type, e.reason) for e in events] == [("Normal", "Submitted")]
    message = events[0].message
    # What happened last comes first: a message too long for an Event is cut at its end.
    assert message.startswith("submitted ")
    assert "DatasetValidated: " in message and "HardwarePlanned: " in message
    # A pass with one step says it as before.
    world.backend.work().state = WorkState.RUNNING
    assert [e.reason for e in world.step().events] == ["TrainingStarted"]


def test_warnings_stay_events_of_their_own() -> None:
    from finetune_operator.lifecycle.reconcile import EventRecord, one_event_per_pass

    events = [
        EventRecord("Normal", "Cancelled", "cancelled Job x"),
        EventRecord("Warning", "DatasetInvalid", "no column `text`"),
        EventRecord("Normal", "Suspended", "held"),
    ]
    merged = one_event_per_pass(events)
    assert [(e.type, e.reason) for e in merged] == [("Warning", "DatasetInvalid"), ("Normal", "Suspended")]
    assert merged[1].message == "held (after Cancelled: cancelled Job x)"


def test_a_job_walks_to_succeeded_with_one_submission(world: World) -> None:
    world.step()
    assert world.phase == Phase.QUEUED
    world.backend.work().state = WorkState.RUNNING
    world.emit(ftjob=EventKind.PROGRESS, step=5, total_steps=10, loss=1.5)
    world.step()
    assert world.phase == Phase.RUNNING
    world.backend.work().state = WorkState.SUCCEEDED
    world.step()
    assert world.phase == Phase.SUCCEEDED
    assert world.backend.submissions == 1 and world.body["status"]["attempts"] == 1


class FakeHub:
    """What the Hub holds: repo -> files this job pushed there; `error` makes the lookup fail instead."""

    def __init__(self) -> None:
        self.repos: dict[str, list[str]] = {}
        self.error: Exception | None = None

    def __call__(self, repo: str, *, suffixes: tuple[str, ...], **_: Any) -> list[str]:
        if self.error is not None:
            raise self.error
        files = [f for f in self.repos.get(repo, []) if f.endswith(suffixes)]
        if not files:
            raise SpecError("ModelNotPushed", f"the run ended, but `{repo}` holds no such files")
        return files


def test_the_outcome_is_what_the_hub_holds_not_what_the_log_claims(world: World) -> None:
    hub = FakeHub()
    world.deps.confirm_push = hub
    world.edit(output={"repo": "tester/out"})
    world.step()
    world.backend.work().state = WorkState.RUNNING
    world.step()
    # The run claims a push (a forged line would say the same), but nothing reached the Hub.
    world.emit(ftjob=EventKind.PUBLISHED, artifact="model", url="https://hub/tester/out")
    world.backend.work().state = WorkState.SUCCEEDED
    hub.error = RetryLater("confirming the pushed model: HTTP 503 from the Hub; retrying")
    world.step()
    assert world.phase != Phase.SUCCEEDED, "a Hub that cannot answer is asked again, not trusted"
    assert world.condition("Retrying").status == "True"
    assert "model" not in world.body["status"].get("outputs", {}), "a log line alone never sets an output"
    hub.error = None
    world.later()
    assert world.phase == Phase.FAILED and world.condition("Failed").reason == "ModelNotPushed"
    assert not world.backend.work().cancelled, "a run that ended by itself is kept (its logs)"


def test_a_pushed_model_counts_even_when_the_log_missed_the_published_line(world: World) -> None:
    hub = FakeHub()
    hub.repos["tester/out"] = ["adapter_model.safetensors", "README.md"]
    hub.repos["tester/out-GGUF"] = ["out-Q8_0.gguf", "out-Q4_K_M.gguf", "README.md"]
    world.deps.confirm_push = hub
    world.deps.config.hf_endpoint = "https://hub.example"
    world.edit(output={"repo": "tester/out", "gguf": ["Q4_K_M", "Q8_0"]})
    world.step()
    world.backend.work().state = WorkState.SUCCEEDED  # the log stream ended before the `published` line
    world.step()
    assert world.phase == Phase.SUCCEEDED
    outputs = world.body["status"]["outputs"]
    assert outputs["model"] == "https://hub.example/tester/out"
    assert outputs["gguf"] == [
        "https://hub.example/tester/out-GGUF/blob/main/out-Q4_K_M.gguf",
        "https://hub.example/tester/out-GGUF/blob/main/out-Q8_0.gguf",
    ]
    assert world.condition("ModelPushed").status == "True" and world.condition("GGUFPushed").status == "True"


def test_forged_events_from_the_run_are_ignored(world: World) -> None:
    """Reward code or a dataset row can print anything: only lines signed with the attempt's key count."""
    world.step()
    world.backend.work().state = WorkState.RUNNING
    assert world.backend.work().events_key, "the run is given its attempt's key"
    forged = '{"ftjob":"published","artifact":"model","url":"https://evil.example/m","time":1e12}'
    world.backend.work().lines.append(forged)
    world.emit(ftjob=EventKind.PUBLISHED, artifact="model", url="https://evil.example/k", key="guessed")
    world.emit(ftjob=EventKind.PROGRESS, step=5, total_steps=10, loss=1.5)
    world.step()
    assert world.phase == Phase.RUNNING
    assert "model" not in world.body["status"].get("outputs", {})
    assert world.body["status"]["progress"]["step"] == 5
    world.emit(ftjob=EventKind.PUBLISHED, artifact="model", url="https://hub/tester/m")
    world.step()
    assert world.body["status"]["outputs"]["model"] == "https://hub/tester/m"


def test_terminal_stays_terminal_for_its_generation(world: World) -> None:
    world.step()
    world.backend.work().state = WorkState.SUCCEEDED
    world.step()
    assert world.phase == Phase.SUCCEEDED
    before = dict(world.body["status"])
    world.later()
    world.later()
    assert world.body["status"] == before
    assert world.backend.submissions == 1 and world.validator.calls == 1


def test_existing_work_is_adopted_before_anything_is_submitted(world: World) -> None:
    world.step()
    world.body["status"] = {}  # the status write after the submission was lost; the operator restarts
    world.memory.tracker = None  # what an operator that restarted has no more
    world.later()
    assert world.backend.submissions == 1
    submitted = world.condition("Submitted")
    assert submitted.reason == "Adopted"
    assert world.body["status"]["attempts"] == 1, "an adopted job shows the attempt it runs, never 0"


def test_repeated_passes_never_submit_twice(world: World) -> None:
    for _ in range(5):
        world.later()
    assert world.backend.submissions == 1


def test_transient_errors_back_off_exponentially_up_to_a_cap(world: World) -> None:
    world.backend.fail_submit = RetryLater("the backend answered 503", delay=30)
    delays = []
    for _ in range(5):
        world.later()
        backoff = world.memory.backoff
        assert backoff is not None
        delays.append(backoff.failures)
        message = world.condition("Retrying").message
        assert "503" in message
    assert delays == [1, 2, 3, 4, 5]
    assert "next in 120s" in world.condition("Retrying").message  # capped
    # A tick inside the backoff does nothing at all.
    before = dict(world.body["status"])
    world.step()
    assert world.body["status"] == before
    world.backend.fail_submit = None
    world.later()
    assert world.phase == Phase.QUEUED
    assert world.condition("Retrying").status == "False"


# -- suspend -------------------------------------------------------------------------------------------------
def test_suspend_holds_after_planning_and_unsuspend_submits_once(world: World) -> None:
    world.body["spec"]["suspend"] = True
    world.step()
    assert world.phase == Phase.SUSPENDED
    assert world.backend.submissions == 0
    assert world.body["status"]["plan"]["target"] == "Fake/cpu"
    world.edit(suspend=False)
    world.step()
    assert world.phase == Phase.QUEUED and world.backend.submissions == 1


def test_suspending_a_running_job_stops_it_and_resuming_starts_a_new_attempt(world: World) -> None:
    world.step()
    world.backend.work().state = WorkState.RUNNING
    world.step()
    world.edit(suspend=True)
    world.step()
    assert world.phase == Phase.SUSPENDED
    assert world.backend.work().cancelled
    world.edit(suspend=False)
    world.step()  # attempt 1 has not stopped yet: wait for it (it may still push its checkpoint)
    assert world.backend.submissions == 1
    world.backend.work().state = WorkState.CANCELLED
    world.later()
    assert world.backend.submissions == 2 and world.phase == Phase.QUEUED
    assert world.backend.work(2).plan.job.attempt == 2
    assert world.body["status"]["attempts"] == 2


# -- fixable problems wait and heal; the rest fail for their generation only -------------------------------
def test_a_missing_secret_blocks_until_it_appears(world: World) -> None:
    del world.kube.secrets["hf-token"]
    world.step()
    assert world.phase == Phase.BLOCKED
    assert world.condition("Blocked").reason == "TokenSecretNotFound"
    assert world.condition("Failed") is None
    world.step()  # inside the backoff: nothing new
    for _ in range(6):
        world.later()
    assert "next check in 30s" in world.body["status"]["message"], "a Secret is looked for every 30 s at most"
    world.kube.secrets["hf-token"] = "hf_test"  # the Secret arrives (GitOps applied it second)
    world.later()
    assert world.phase == Phase.QUEUED
    assert world.condition("Blocked").status == "False"


def test_a_forbidden_api_call_blocks_naming_the_grant_and_heals_once_granted(world: World) -> None:
    world.backend.fail_submit = forbidden("create", "jobs", "ns")  # what rbac.api_error makes of a 403
    world.step()
    run_to(world, Phase.BLOCKED)
    blocked = world.condition("Blocked")
    assert blocked.reason == "Forbidden" and world.condition("Failed") is None
    assert "`create` `jobs` in namespace `ns`" in blocked.message and "watchNamespaces" in blocked.message
    world.backend.fail_submit = None  # the RBAC is granted
    world.later()
    assert world.phase == Phase.QUEUED and world.backend.submissions == 1


def test_a_dataset_that_needs_a_mapping_heals_when_the_next_commit_adds_it(world: World) -> None:
    world.validator.needs = Conversion.ALPACA
    world.step()
    assert world.phase == Phase.BLOCKED
    assert world.condition("DatasetValidated").reason == "DatasetInvalid"
    assert "conversion" in world.condition("Blocked").message
    world.edit(dataset={"name": "tester/data", "conversion": "Alpaca"})
    world.step()  # a spec edit is looked at at once, whatever the backoff
    assert world.phase == Phase.QUEUED


def test_a_budget_below_the_estimate_heals_when_raised(world: World) -> None:
    world.planner.cost = 5.0
    world.body["spec"]["budget"] = {"maxCostUSD": 1.0}
    world.step()
    assert world.phase == Phase.BLOCKED
    assert world.condition("Blocked").reason == "BudgetExceeded"
    assert world.backend.submissions == 0
    world.edit(budget={"maxCostUSD": 10.0})
    world.step()
    assert world.phase == Phase.QUEUED and world.backend.submissions == 1


def test_a_run_about_to_pass_its_budget_stops_and_resumes_when_the_budget_is_raised(world: World) -> None:
    # $36/h is a cent a second; the guard keeps one poll (15 s) + the stop margin (120 s) in hand.
    world.planner.hourly_price = 36.0
    world.body["spec"]["budget"] = {"maxCostUSD": 2.0}
    world.step()
    work = world.backend.work()
    work.state, work.started_at = WorkState.RUNNING, datetime.now(UTC) - timedelta(seconds=60)
    world.step()
    assert world.phase == Phase.RUNNING and not work.cancelled  # $0.60 + $1.35 in hand < $2
    work.started_at = datetime.now(UTC) - timedelta(seconds=70)
    world.step()
    assert work.cancelled, "the run is stopped (the runtime checkpoints on SIGTERM)"
    assert world.phase == Phase.BLOCKED and world.condition("Blocked").reason == "BudgetExceeded"
    # Timestamps are whole seconds, as Kubernetes writes them: 70-71 s at a cent a second.
    assert re.search(
        r"spent \$0\.7[01] of `spec.budget.maxCostUSD` \$2\.00", world.condition("Blocked").message
    )
    world.later()
    assert world.phase == Phase.BLOCKED and world.backend.submissions == 1, (
        "no new attempt on the same budget"
    )
    world.edit(budget={"maxCostUSD": 10.0})
    world.step()  # the stopped attempt is still pushing its checkpoint: the next one waits for it
    assert world.backend.submissions == 1
    work.state, work.ended_at = WorkState.CANCELLED, work.started_at + timedelta(seconds=75)
    world.later()
    assert world.backend.submissions == 2 and world.body["status"]["attempts"] == 2
    second = world.backend.work(2)
    second.state, second.started_at = WorkState.RUNNING, datetime.now(UTC) - timedelta(seconds=10)
    world.step()
    cost = world.body["status"]["cost"]
    assert world.phase == Phase.RUNNING
    assert 84 <= cost["runningSeconds"] <= 90 and cost["earlierSeconds"] == 75  # both attempts count
    assert cost["actualUSD"] == pytest.approx(cost["runningSeconds"] / 100)


def test_free_hardware_never_trips_the_budget_guard(world: World) -> None:
    world.planner.cost = 0.0
    world.body["spec"]["budget"] = {"maxCostUSD": 0.01}
    world.step()
    work = world.backend.work()
    work.state, work.started_at = WorkState.RUNNING, datetime.now(UTC) - timedelta(hours=5)
    world.step()
    assert world.phase == Phase.RUNNING and not work.cancelled


def test_the_world_is_rechecked_with_a_bounded_backoff(world: World) -> None:
    world.planner.error = SpecError("NoHardwareFits", "all GPUs are busy")
    for _ in range(8):
        world.later()
    assert world.phase == Phase.BLOCKED
    assert "next check in 300s" in world.body["status"]["message"]  # bounded at 5 minutes
    world.planner.error = None  # GPUs free up
    world.later()
    assert world.phase == Phase.QUEUED


def test_a_permanent_error_fails_and_only_a_new_generation_reevaluates(world: World) -> None:
    world.planner.error = SpecError("HyperparametersInvalid", "`learningRate` must be positive")
    world.step()
    assert world.phase == Phase.FAILED
    world.planner.error = None
    world.later()
    assert world.phase == Phase.FAILED, "the same generation stays failed"
    world.edit(hyperparameters={"learningRate": 1e-4})
    world.step()
    assert world.phase == Phase.QUEUED
    assert world.condition("Failed") is None


def test_a_spec_the_models_cannot_read_fails_naming_the_field_and_a_fix_reopens_it(world: World) -> None:
    """What admission cannot express (a map under `extraArgs`) fails with the field's name, not a silent
    retry; the next generation with the field fixed goes on as any other job."""
    world.edit(hyperparameters={"extraArgs": {"warmup_ratio": {"value": 0.1}}})
    with pytest.raises(ValidationError) as err:
        FineTuneJob.from_body(world.body)
    outcome = reject_malformed(world.body, err.value)
    world.body["status"] = outcome.status.wire()
    assert world.phase == Phase.FAILED
    failed = get_condition(outcome.status, "Failed")
    assert failed is not None and failed.reason == "InvalidSpec" and failed.observed_generation == 2
    assert "`spec.hyperparameters.extraArgs.warmup_ratio` must be a string" in failed.message
    assert "not a map" in failed.message
    assert [e.reason for e in outcome.events] == ["InvalidSpec"]
    world.edit(hyperparameters={"extraArgs": {"warmup_ratio": 0.1}})
    world.step()
    assert world.phase == Phase.QUEUED and world.backend.submissions == 1
    assert world.condition("Failed") is None


# -- attempts --------------------------------------------------------------------------------------------------
def test_an_infrastructure_failure_is_retried_as_a_new_attempt_up_to_the_limit(world: World) -> None:
    world.step()
    for attempt in (1, 2):
        world.backend.work(attempt).state = WorkState.FAILED
        world.backend.work(attempt).reason = "HFJobError"
        world.step()
        assert world.phase != Phase.FAILED
        world.later()
        assert world.backend.submissions == attempt + 1
    world.backend.work(3).state = WorkState.FAILED
    world.step()
    assert world.phase == Phase.FAILED
    assert world.body["status"]["attempts"] == 3


def test_a_hub_outage_the_runtime_reports_is_retried_as_a_new_attempt(world: World) -> None:
    """`HubUnavailable` (a 5xx, the network, an hf_xet transfer) is the one runtime error a new attempt can
    overcome: it resumes from the last checkpoint instead of failing the job."""
    world.step()
    world.backend.work().state = WorkState.RUNNING
    world.emit(ftjob=EventKind.ERROR, reason="HubUnavailable", message="the Hub could not be reached")
    world.backend.work().state = WorkState.FAILED
    outcome = world.step()
    assert world.phase != Phase.FAILED and "Retrying" in [e.reason for e in outcome.events]
    world.later()
    assert world.backend.submissions == 2


def test_a_run_the_backend_restarted_itself_is_visible(world: World) -> None:
    """A Job replaces a failed pod within the attempt: status and an Event say so, once per restart."""
    world.step()
    world.backend.work().state = WorkState.RUNNING
    original_poll = world.backend.poll

    def restarted(target: JobTarget, ref: WorkRef) -> WorkStatus:
        return original_poll(target, ref).model_copy(update={"restarts": 1})

    world.backend.poll = restarted  # type: ignore[method-assign]
    first = world.step()
    again = world.step()
    assert world.body["status"]["backendRef"]["restarts"] == 1
    assert [e.reason for e in first.events].count("RunRestarted") == 1
    assert "RunRestarted" not in [e.reason for e in again.events]
    assert world.body["status"]["attempts"] == 1 and world.backend.submissions == 1


def test_the_runtimes_own_error_is_not_retried(world: World) -> None:
    world.step()
    world.backend.work().state = WorkState.FAILED
    world.emit(ftjob=EventKind.ERROR, reason="DatasetColumnsMissing", message="no `text` column")
    world.step()
    assert world.phase == Phase.FAILED
    assert world.condition("Failed").reason == "DatasetColumnsMissing"
    assert world.backend.submissions == 1


def test_work_only_the_operator_can_cancel_is_submitted_once_the_job_holds_the_finalizer(
    world: World,
) -> None:
    held: list[int] = []  # submissions made when the finalizer went on

    def hold(job: FineTuneJob) -> str:
        held.append(world.backend.submissions)
        return "42"

    world.deps.hold_for_cleanup = hold
    world.step()
    assert held == [0] and world.backend.submissions == 1  # the finalizer first, then the work
    assert world.memory.version == "42"  # the finalizer's write is the version this process last saw


def test_a_job_that_cannot_take_the_finalizer_submits_nothing(world: World) -> None:
    def refuse(job: FineTuneJob) -> str:
        raise RetryLater("could not add the finalizer (422 being deleted)", delay=2)

    world.deps.hold_for_cleanup = refuse
    world.step()
    assert world.backend.submissions == 0
    assert world.phase != Phase.RUNNING.value


def test_work_the_garbage_collector_removes_with_the_job_needs_no_finalizer(world: World) -> None:
    world.backend.collected_with_job = True  # a Job owned by the FineTuneJob

    def hold(job: FineTuneJob) -> str:
        raise AssertionError("a finalizer for work the garbage collector removes")

    world.deps.hold_for_cleanup = hold
    world.step()
    assert world.backend.submissions == 1


def test_a_backend_that_retries_itself_is_not_retried_again(world: World) -> None:
    world.backend.retries_itself = True
    world.step()
    world.backend.work().state = WorkState.FAILED
    world.step()
    assert world.phase == Phase.FAILED and world.backend.submissions == 1


def test_a_failed_run_over_several_nodes_is_retried_whole_by_the_operator(world: World) -> None:
    """A Job does not restart one node's pod alone (half a process group cannot go on): the attempt ends,
    and the operator starts the next one on every node."""
    world.backend.retries_itself = True
    world.planner.nodes = 2
    world.step()
    world.backend.work().state = WorkState.FAILED
    world.backend.work().reason = "BackoffLimitExceeded"
    world.step()
    world.later()
    assert world.phase != Phase.FAILED and world.backend.submissions == 2


def test_a_run_a_queue_preempted_shows_queued_and_runs_again_in_the_same_attempt(world: World) -> None:
    world.step()
    world.backend.work().state = WorkState.RUNNING
    world.step()
    assert world.phase == Phase.RUNNING
    work = world.backend.work()
    work.state, work.preempted, work.message = WorkState.QUEUED, True, "preempted by Kueue (Preempted: …)"
    outcome = world.step()
    assert world.phase == Phase.QUEUED and world.body["status"]["message"] == work.message
    assert "Requeued" in [e.reason for e in outcome.events]
    work.state, work.preempted = WorkState.RUNNING, False
    world.step()
    assert world.phase == Phase.RUNNING and world.backend.submissions == 1


# -- deletion ----------------------------------------------------------------------------------------------------
def test_deletion_cancels_work_whose_status_write_was_lost(world: World) -> None:
    world.step()
    job = FineTuneJob.from_body({**world.body, "status": {"plan": world.body["status"]["plan"]}})
    assert cancel_work(job, world.deps) == "cancelled Fake work-1"
    assert world.backend.work().cancelled


def test_deletion_cancels_work_when_the_whole_first_status_write_was_lost(world: World) -> None:
    """Validate, plan and submit happen in one pass; if its status write is lost there is no plan to say
    which backend holds the work, so deletion looks on every backend."""
    world.step()
    job = FineTuneJob.from_body({**world.body, "status": {}})
    assert cancel_work(job, world.deps) == "cancelled Fake work-1"
    assert world.backend.work().cancelled


def test_a_failure_while_running_cancels_the_attempt_first(world: World) -> None:
    """A failed job gets no more timer ticks: its live work must not run on unwatched until its timeout."""
    world.step()
    world.backend.work().state = WorkState.RUNNING
    world.step()
    original_poll = world.backend.poll

    def refused(target: JobTarget, ref: WorkRef) -> WorkStatus:
        raise SpecError("HubRequestRefused", "the Jobs API refused the request (400)")

    world.backend.poll = refused  # type: ignore[method-assign]
    outcome = world.step()
    world.backend.poll = original_poll  # type: ignore[method-assign]
    assert world.phase == Phase.FAILED
    assert world.backend.work().cancelled
    assert "Cancelled" in [e.reason for e in outcome.events]


def test_deleting_the_namespace_still_cancels_remote_work(world: World) -> None:
    world.step()
    assert world.kube.kept == {("ftjob-system", UID): "hf_test"}, "the cancel token is kept while work runs"
    del world.kube.secrets["hf-token"]  # `kubectl delete namespace` took the Secret with the job
    job = FineTuneJob.from_body(world.body)
    assert cancel_work(job, world.deps) == "cancelled Fake work-1"
    assert world.backend.work().cancelled
    assert world.kube.kept == {}


def test_the_kept_cancel_token_goes_when_the_work_ends(world: World) -> None:
    world.step()
    world.backend.work().state = WorkState.SUCCEEDED
    world.step()
    assert world.phase == Phase.SUCCEEDED and world.kube.kept == {}


def test_validation_and_planning_are_timed_where_they_run(world: World) -> None:
    metrics = OperatorMetrics()
    world.deps.metrics = metrics
    world.step()
    text = metrics.render()
    assert "finetune_operator_validation_duration_seconds_count 1.0" in text
    assert "finetune_operator_planning_duration_seconds_count 1.0" in text


def test_monitoring_work_that_needs_no_token_reads_no_secret(world: World) -> None:
    """A batch/v1 Job is polled with the operator's own credentials: a running job's ticks read no Secret."""
    world.backend.needs_token = False
    world.step()
    world.backend.work().state = WorkState.RUNNING
    reads = world.kube.reads
    for _ in range(3):
        world.step()
    assert world.phase == Phase.RUNNING and world.kube.reads == reads


def test_a_blocked_job_reads_its_secret_afresh_at_the_next_check(world: World) -> None:
    world.planner.error = SpecError("TokenInvalid", "the Hub refused the token")
    world.step()
    assert world.phase == Phase.BLOCKED and world.kube.forgotten == ["hf-token"]


def test_watched_work_is_not_polled_in_the_pass_that_submits_it(world: World) -> None:
    """A Job created this very pass has nothing to show yet (a poll would be a GET and a pod list per job
    submitted); its watch events wake the next pass, which polls it."""
    polls: list[str] = []
    world.backend.watched = True
    poll = world.backend.poll
    world.backend.poll = lambda target, ref: polls.append(ref.id) or poll(target, ref)  # type: ignore[method-assign]
    world.step()
    assert world.phase == Phase.QUEUED and world.backend.submissions == 1 and polls == []
    world.backend.work().state = WorkState.RUNNING
    world.step()
    assert world.phase == Phase.RUNNING and polls == ["work-1"] and world.backend.submissions == 1


def test_looking_at_queued_work_writes_nothing_until_it_starts(world: World) -> None:
    """A thousand jobs waiting in a queue: the passes that look at them (each Job's watch events, the timer)
    find nothing new, so they write no status: no empty cost report, progress monitor or outputs."""
    world.backend.watched = True  # the pass that submits does not look at the work: the next ones do
    world.step()
    submitted = copy.deepcopy(world.body["status"])
    for _ in range(3):
        world.step()
        assert world.body["status"] == submitted
    work = world.backend.work()
    work.state, work.started_at = WorkState.RUNNING, datetime.now(UTC)
    world.step()
    status = world.body["status"]
    assert world.phase == Phase.RUNNING and status["cost"]["attempt"] == 1 and "monitor" in status
