"""The phase machine: validate → plan → (suspend) → submit → monitor → done. No kopf in here.

`reconcile` is level-based and idempotent: it reads the job (spec + last status), does the next step,
and returns the new status and the Events to post. Restart safety comes from three rules:
backend identity derives from the UID (and the attempt) and is looked up before any submission; a
terminal job is never touched again for its generation; and a job with a `backendRef` is never
submitted again.

Level-triggered healing: before submission, a problem the user or the world can fix (a Secret that
arrives later, a mapping added by the next commit, a budget raised, GPUs freeing up; see
`errors.WAITING_REASONS`) blocks the job instead of failing it. A blocked job re-checks on every spec
change at once and on a bounded timer otherwise. A job that failed before submission is re-evaluated
when its generation changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import ValidationError

from finetune_operator.api.resource import FineTuneJob
from finetune_operator.api.spec import FineTuneJobSpec, parse_duration_seconds
from finetune_operator.api.status import (
    TERMINAL_PHASES,
    ConditionType,
    CostReport,
    FineTuneJobStatus,
    Outputs,
    Phase,
    Verdict,
    now,
)
from finetune_operator.backends.base import (
    TERMINAL_STATES,
    Backend,
    JobTarget,
    LogCursor,
    WorkRef,
    WorkState,
    WorkStatus,
)
from finetune_operator.cluster.gateway import KubeGateway
from finetune_operator.config import OperatorConfig
from finetune_operator.errors import RetryLater, SpecError
from finetune_operator.hub import WEIGHT_SUFFIXES, confirm_pushed, repo_url
from finetune_operator.lifecycle.conditions import (
    get_condition,
    is_true,
    remove_condition,
    set_condition,
    summarise_phase,
)
from finetune_operator.lifecycle.cost import format_usd, observe, over_budget
from finetune_operator.lifecycle.render import render_plan
from finetune_operator.lifecycle.signing import events_key
from finetune_operator.lifecycle.status_writer import StatusWriter
from finetune_operator.lifecycle.tracker import ProgressTracker
from finetune_operator.metrics import JobLabels, OperatorMetrics
from finetune_operator.validation.local_paths import check_local_paths
from finetune_training.errors import RETRIED_REASONS
from finetune_training.plan import Method, RewardSpec, RewardType

log = logging.getLogger(__name__)

ATTEMPT_ENDED = "AttemptEnded"
"""`Submitted=False` reason: the last attempt failed for a reason a new attempt can overcome."""
SUSPENDED = "Suspended"
BUDGET_STOPPED = "BudgetStopped"
"""`Submitted=False` reason: the budget guard stopped the run at a checkpoint; a raised budget resumes it."""
ATTEMPT_ENDED_REASONS = frozenset({ATTEMPT_ENDED, SUSPENDED, BUDGET_STOPPED})
MAX_BACKOFF_SECONDS = 120.0
"""Transient errors (API or Hub 5xx, timeouts) retry fast: the same call is likely to work soon."""
BLOCKED_FIRST_RECHECK_SECONDS = 10.0
BLOCKED_MAX_RECHECK_SECONDS = 300.0
"""A blocked job waits on the world (a Secret, GPUs, a Hub repo): re-check soon, then every 5 minutes at
most. Spec edits re-check at once, whatever the timer says."""
SECRET_MAX_RECHECK_SECONDS = 30.0
"""A missing token Secret is re-read at least this often: GitOps applies it seconds after the job, and a
GET is cheap. (Watching Secrets would need `list`/`watch` on every Secret the operator can see.)"""
SECRET_REASONS = frozenset({"TokenSecretNotFound", "TokenSecretKeyMissing"})


@dataclass
class EventRecord:
    """An Event to post on the FineTuneJob."""

    type: str  # Normal | Warning
    reason: str
    message: str


def one_event_per_pass(events: list[EventRecord]) -> list[EventRecord]:
    """The Normal events of one pass as one Event, under the last step's reason, its message first and the
    earlier steps after it (`Submitted: submitted Job x (DatasetValidated: ...; HardwarePlanned: ...)`).

    A new job validates, plans and submits in one pass: one Event (an API write) instead of three, at a
    thousand jobs three thousand writes fewer, and nothing is lost (each step's reason and words are in the
    message; the conditions hold each step's own reason). Warnings stay one Event each, in their place.
    """
    normal = [e for e in events if e.type == "Normal"]
    if len(normal) < 2:
        return events
    last, earlier = normal[-1], normal[:-1]
    steps = "; ".join(f"{e.reason}: {e.message}" for e in earlier)
    merged = EventRecord("Normal", last.reason, f"{last.message} (after {steps})")
    return [merged if e is last else e for e in events if e.type != "Normal" or e is last]


@dataclass
class Outcome:
    """What one reconcile decided."""

    status: FineTuneJobStatus
    events: list[EventRecord] = field(default_factory=list)


@dataclass(frozen=True)
class Backoff:
    """When a waiting job is looked at again."""

    not_before: float
    """`time.monotonic()` before which the job's next look is not due (an earlier event's pass skips it)."""
    failures: int
    """Consecutive passes that ended waiting (the exponent of the delay)."""
    generation: int
    """The generation that waits: a spec edit (a new generation) is re-checked at once."""


@dataclass
class Deps:
    """What the reconcile loop needs, built once at start-up (`handlers.startup.build_deps`, kept in kopf's
    operator-wide memo). Shared by every job; what one job needs between passes is its :class:`JobMemory`."""

    config: OperatorConfig
    kube: KubeGateway
    backends: dict[str, Backend]
    metrics: OperatorMetrics
    validate: Callable[..., Any]
    """`inspect_dataset` (behind the validation cache): the dataset's report."""
    plan: Callable[..., Any]
    """`PlannerService.plan`: the hardware decision."""
    status_writer: StatusWriter
    """Fresh reads and status patches (the handlers' side of a pass)."""
    confirm_push: Callable[..., list[str]] = confirm_pushed
    """The files of a repo that holds this job's push, or SpecError `ModelNotPushed` (see `hub`)."""
    hold_for_cleanup: Callable[[FineTuneJob], str | None] | None = None
    """Put the operator's finalizer on a job before work that only the operator can cancel is submitted for
    it (`Backend.collected_with_job` is False); returns the object's new resourceVersion. None: work needs no
    finalizer (tests of the phase machine)."""


@dataclass
class JobMemory:
    """What the operator keeps about one FineTuneJob between passes, in memory only (the status is the truth:
    an operator that restarts starts with a fresh one and loses nothing but its place in the log).

    The handlers keep one per watched FineTuneJob, by UID (`handlers.jobs.WatchedJobs`), from the first watch
    event that shows the job to the one that says it is gone.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    """Held for a whole pass, and by the deletion handler: a deletion waits for a pass that may be submitting
    work, so that work is cancelled too (each acts on a fresh read made under the lock)."""
    tracker: ProgressTracker | None = None
    """The running attempt's progress: the events read so far (and where its log was read up to)."""
    backoff: Backoff | None = None
    """When a waiting job is looked at again (a new generation looks at once)."""
    rest: float | None = None
    """Set by a pass: the seconds until the next look when nothing wakes the job sooner (watch-fed work,
    whose Job and pod events wake it); None: the operator's poll interval."""
    version: str | None = None
    """The resourceVersion of the object this process last read or wrote."""

    def seen(self, version: str | None) -> None:
        """The object at `version` is what this process last read or wrote."""
        if version:
            self.version = version

    def current(self, body: Mapping[str, Any]) -> bool:
        """Whether `body` (from the watch) already holds everything this process last read or wrote, so a pass
        can start from it without a fresh GET: a first look (this process has written nothing yet, and the watch
        began after any earlier operator stopped), or a version at least as new as the last one seen.

        Resource versions of one resource compare as integers (Kubernetes 1.35, KEP-5504 "comparable resource
        versions"); a version that is not one (another API server) only matches itself.
        """
        version = (body.get("metadata") or {}).get("resourceVersion")
        if not version:
            return False
        if self.version is None or version == self.version:
            return True
        newer = _compare_versions(str(version), self.version)
        return newer is not None and newer >= 0


def _compare_versions(a: str, b: str) -> int | None:
    """-1, 0 or 1 as resource version `a` is older, the same or newer than `b`; None when either is not the
    canonical decimal form the API server promises (no sign, no leading zero, not zero)."""
    if not (_canonical_version(a) and _canonical_version(b)):
        return None
    left, right = int(a), int(b)
    return (left > right) - (left < right)


def _canonical_version(version: str) -> bool:
    return version.isascii() and version.isdigit() and not version.startswith("0")


def _target(job: FineTuneJob, deps: Deps, *, with_token: bool, attempt: int) -> JobTarget:
    ref = job.spec.token_secret_ref
    secret = ref.name if ref else deps.config.default_token_secret
    key = ref.key if ref else "token"
    token = None
    if with_token and secret:
        token = deps.kube.read_secret_value(job.metadata.namespace, secret, key)
    return JobTarget(
        namespace=job.metadata.namespace,
        name=job.metadata.name,
        uid=job.metadata.uid,
        attempt=attempt,
        token_secret_name=secret,
        token_secret_key=key,
        token=token,
        events_key=events_key(deps.config, job.metadata.uid, attempt),
        queue=job.spec.queue or deps.config.default_queue,
    )


class Reconciler:
    """Carries one FineTuneJob one step further."""

    def __init__(self, job: FineTuneJob, deps: Deps, memory: JobMemory) -> None:
        self.job = job
        self.deps = deps
        self.memory = memory
        self.gen = job.metadata.generation
        self.status = job.status.model_copy(deep=True)
        self.events: list[EventRecord] = []
        self._token_target: JobTarget | None = None
        self._with_token = False

    # -- helpers -------------------------------------------------------------------------------------
    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(EventRecord("Warning" if warning else "Normal", reason, message))

    def target(self, with_token: bool = True) -> JobTarget:
        """The job's identity with its token (read at most once per reconcile, never stored in status), for
        the attempt in hand: the live one once submitted, else the next. `with_token=False`: a pass whose
        backend does not need the token (a batch/v1 Job is polled with the operator's own credentials)
        reads no Secret."""
        if self._token_target is None or (with_token and not self._with_token):
            self._token_target = _target(self.job, self.deps, with_token=with_token, attempt=self.attempt())
            self._with_token = with_token
        return self._token_target

    def forget_token(self) -> None:
        """The job waits on something a new token may fix (refused, missing, a repo it cannot see): its
        Secret is read afresh at the next check, not taken from the gateway's cache."""
        ref = self.job.spec.token_secret_ref
        secret = ref.name if ref else self.deps.config.default_token_secret
        if secret:
            self.deps.kube.forget_secret(self.job.metadata.namespace, secret)

    def attempt(self) -> int:
        ref = self.status.backend_ref
        if self.submitted() and ref is not None:
            return ref.attempt or max(self.status.attempts, 1)
        return self.status.attempts + 1

    def fail(self, reason: str, message: str) -> None:
        mark_failed(self.status, reason, message, self.gen)
        self.event(reason, message, warning=True)
        self.deps.metrics.job_failed(reason)

    # -- the phase machine ---------------------------------------------------------------------------
    def run(self) -> Outcome:
        if self.status.phase in TERMINAL_PHASES and not self.reopen():
            return Outcome(self.status)  # terminal stays terminal for its generation: never resubmitted
        try:
            self.step()
            self.resolved(ConditionType.RETRYING, "Recovered")
            self.resolved(ConditionType.BLOCKED, "Resolved")
            self.memory.backoff = None
        except SpecError as err:
            if err.fixable:
                self.block(err)
            else:
                self.stop_live_work(err)
                self.fail(err.reason, err.message)
        except RetryLater as err:
            self.retry_later(err)
        self.status.phase = summarise_phase(self.status)
        self.status.observed_generation = self.gen
        return Outcome(self.status, one_event_per_pass(self.events))

    def reopen(self) -> bool:
        """A job that failed before submission is re-evaluated for a new generation (a fixed spec).

        After submission the training fields are immutable, so a finished run stays finished.
        """
        failed = get_condition(self.status, ConditionType.FAILED)
        if (
            self.submitted()
            or self.status.phase != Phase.FAILED
            or failed is None
            or failed.observed_generation == self.gen
        ):
            return False
        for type_ in (ConditionType.FAILED, ConditionType.COMPLETE, ConditionType.RETRYING):
            remove_condition(self.status, type_)
        self.status.completion_time = None
        self.event("Reopened", f"generation {self.gen}: re-evaluating after `{failed.reason}`")
        return True

    def stop_live_work(self, err: SpecError) -> None:
        """A failure while an attempt runs ends the job: cancel the attempt first, so no paid work runs on
        unwatched (a terminal job is not looked at again) until its own timeout."""
        ref = self.status.backend_ref
        if ref is None or not self.submitted():
            return
        try:
            backend = self.backend()
            try:
                state: WorkState | None = backend.poll(self.target(), ref).state
            except (SpecError, RetryLater):
                state = None  # the failure may be the poll itself: cancel to be safe
            if state in TERMINAL_STATES:
                return  # ended by itself (e.g. the push it claimed is not on the Hub): keep it for its logs
            backend.cancel(self.target(), ref)
            self.event("Cancelled", f"cancelled {ref.kind} {ref.id}: the job failed ({err.reason})")
        except Exception as exc:  # the failure is what the user must see; the cancel is best effort
            log.warning("could not cancel %s %s after %s: %s", ref.kind, ref.id, err.reason, exc)

    def resolved(self, type_: ConditionType, reason: str) -> None:
        cond = get_condition(self.status, type_)
        if cond is not None and cond.status == "True":
            set_condition(self.status, type_, "False", reason, "", self.gen)

    def block(self, err: SpecError) -> None:
        """Wait for the user or the world to fix `err`; re-check on spec edits and on a bounded timer."""
        self.forget_token()
        cap = SECRET_MAX_RECHECK_SECONDS if err.reason in SECRET_REASONS else BLOCKED_MAX_RECHECK_SECONDS
        delay = self.schedule(BLOCKED_FIRST_RECHECK_SECONDS, cap)
        if set_condition(self.status, ConditionType.BLOCKED, "True", err.reason, err.message, self.gen):
            self.event(err.reason, f"{err.message} (waiting: re-checked on every spec change)", warning=True)
            self.deps.metrics.job_failed(err.reason)
        self.status.message = (
            f"waiting: {err.message} (next check in {delay:.0f}s, or at once on a spec edit)"
        )

    def schedule(self, first: float, cap: float) -> float:
        """Back off this job's next look for this generation; returns the delay."""
        previous = self.memory.backoff
        failures = previous.failures if previous and previous.generation == self.gen else 0
        delay = min(first * (2**failures), cap)
        self.memory.backoff = Backoff(time.monotonic() + delay, failures + 1, self.gen)
        return delay

    def retry_later(self, err: RetryLater) -> None:
        previous = self.memory.backoff
        attempt = (previous.failures if previous and previous.generation == self.gen else 0) + 1
        delay = self.schedule(err.delay, MAX_BACKOFF_SECONDS)
        message = f"{err.message} (attempt {attempt}, next in {delay:.0f}s)"
        if set_condition(self.status, ConditionType.RETRYING, "True", "TransientError", message, self.gen):
            self.event("TransientError", message, warning=True)

    def submitted(self) -> bool:
        """Whether an attempt's work is live. `backendRef` stays on the last attempt after it ended (so
        the training fields stay immutable); a `Submitted` condition turned False by the operator itself
        (a retry, a suspend) means the next attempt is due."""
        if self.status.backend_ref is None:
            return False
        cond = get_condition(self.status, ConditionType.SUBMITTED)
        return cond is None or cond.status == "True" or cond.reason not in ATTEMPT_ENDED_REASONS

    def step(self) -> None:
        if not self.submitted():
            check_local_paths(self.job.spec, self.deps.config)  # before anything reads them
            if not is_true(self.status, ConditionType.DATASET_VALIDATED, self.gen):
                self.validate()
            if not is_true(self.status, ConditionType.HARDWARE_PLANNED, self.gen):
                self.plan()
            self.check_budget()
            if self.job.spec.suspend:
                self.hold()
                return
            if self.submit() and self.backend().watched:
                # Its Job and pods were created just now: nothing to poll yet (a GET and a pod list for every
                # job submitted), and their watch events wake the job's next pass.
                return
        self.monitor()

    # -- validate ------------------------------------------------------------------------------------
    def validate(self) -> None:
        spec = self.job.spec
        set_condition(self.status, ConditionType.DATASET_VALIDATED, "Unknown", "Validating", "", self.gen)
        validate = self.deps.validate
        max_length = (spec.hyperparameters.max_length if spec.hyperparameters else None) or 1024
        answer = _reference_answer_column(spec)
        token = self.target().token
        with self.deps.metrics.time_validation():
            report = validate(
                spec.dataset,
                token=token,
                methods=[spec.method.value],
                max_length=max_length,
                endpoint=self.deps.config.hf_endpoint,
                answer_column=answer,
            )
        summary = report.summary()
        self.status.validation = summary
        verdict = report.verdict(spec.method.value)
        if verdict is None or verdict.verdict != Verdict.READY:
            message = f"dataset `{spec.dataset.name}` cannot train with {spec.method.value}: "
            message += verdict.reason if verdict else "no verdict"
            if verdict and verdict.verdict == Verdict.NEEDS_MAPPING:
                mapping = {}
                if verdict.conversion:
                    mapping["conversion"] = verdict.conversion.value
                if verdict.columns:
                    mapping["columns"] = verdict.columns.wire()
                message += f". Set in `spec.dataset`: {mapping} (or run `ftjob validate` to see the mapping)"
            set_condition(
                self.status, ConditionType.DATASET_VALIDATED, "False", "DatasetInvalid", message, self.gen
            )
            raise SpecError("DatasetInvalid", message)
        rows = f"{summary.rows} rows" if summary.rows is not None else "rows unknown"
        message = f"{spec.method.value}: Ready ({summary.format}, {rows})"
        set_condition(self.status, ConditionType.DATASET_VALIDATED, "True", "DatasetReady", message, self.gen)
        self.status.message = message
        self.event("DatasetValidated", message)

    # -- plan ----------------------------------------------------------------------------------------
    def plan(self) -> None:
        planner = self.deps.plan
        validation = self.status.validation
        token = self.target().token
        with self.deps.metrics.time_planning():
            decision = planner(
                self.job.spec,
                token=token,
                rows=validation.rows if validation else None,
                mean_tokens=validation.mean_tokens if validation else None,
            )
        summary = decision.summary
        self.status.plan = summary
        message = (
            f"{summary.target}, {summary.peft.value}, ~{summary.memory_gib:.1f} GiB/GPU, "
            f"~{summary.estimated_hours:.2f} h, ~${summary.estimated_cost_usd:.2f}: {summary.reason}"
        )
        set_condition(self.status, ConditionType.HARDWARE_PLANNED, "True", "Planned", message, self.gen)
        self.status.message = message
        self.event("HardwarePlanned", message)

    def check_budget(self) -> None:
        """Before the first attempt the estimate must fit the budget; after one, what was spent (the
        estimate has been replaced by the real run, and a raised budget resumes it)."""
        budget = self.job.spec.budget
        plan = self.status.plan
        if budget is None or budget.max_cost_usd is None or plan is None:
            return
        cost = self.status.cost
        if self.status.attempts and cost is not None:
            if self.over_budget(cost.model_copy(), budget.max_cost_usd):
                raise SpecError("BudgetExceeded", self.spent_message(budget.max_cost_usd))
            return
        if plan.estimated_cost_usd > budget.max_cost_usd:
            raise SpecError(
                "BudgetExceeded",
                f"the estimated cost ${plan.estimated_cost_usd:.2f} ({plan.target}, ~{plan.estimated_hours:.2f} h) "
                f"exceeds `spec.budget.maxCostUSD` ${budget.max_cost_usd:.2f}: raise the budget, use `peft: LoRA`, "
                "fewer `hyperparameters.epochs`, or a smaller `maxLength`",
            )

    def over_budget(self, cost: CostReport, max_cost_usd: float) -> bool:
        cfg = self.deps.config
        plan = self.status.plan
        backend = self.deps.backends.get(plan.backend) if plan else None
        poll = cfg.poll_interval_seconds
        if backend is not None and backend.watched:
            poll = max(poll, cfg.watched_poll_seconds)  # its cost changes with no watch event to wake it
        margin = poll + cfg.budget_stop_margin_seconds
        return over_budget(cost, max_cost_usd, margin)

    def spent_message(self, max_cost_usd: float) -> str:
        cost = self.status.cost
        assert cost is not None
        return (
            f"spent {format_usd(cost.actual_usd)} of `spec.budget.maxCostUSD` {format_usd(max_cost_usd)} "
            f"({cost.running_seconds / 60:.1f} min at {format_usd(cost.hourly_price_usd)}/h); the run was "
            "stopped at a checkpoint: raise `spec.budget.maxCostUSD` to resume from it"
        )

    def hold(self) -> None:
        plan = self.status.plan
        cost = f"~${plan.estimated_cost_usd:.2f} on {plan.target}" if plan else "see status.plan"
        message = f"suspended: validated and planned ({cost}); set `spec.suspend: false` to launch"
        if set_condition(self.status, ConditionType.SUBMITTED, "False", "Suspended", message, self.gen):
            self.event("Suspended", message)
        self.status.message = message

    # -- submit --------------------------------------------------------------------------------------
    def backend(self) -> Backend:
        plan = self.status.plan
        assert plan is not None
        backend = self.deps.backends.get(plan.backend)
        if backend is None:
            raise SpecError(
                "BackendDisabled",
                f"backend `{plan.backend}` is not enabled in this operator installation "
                f"(enabled: {sorted(self.deps.backends)}): set `spec.backend` to one of them",
            )
        return backend

    def timeout_seconds(self) -> int:
        budget = self.job.spec.budget
        if budget and budget.timeout:
            return parse_duration_seconds(budget.timeout)
        plan = self.status.plan
        return parse_duration_seconds(plan.suggested_timeout) if plan else 4 * 3600

    def submit(self) -> bool:
        """Submit the next attempt (or adopt its work); True when new work was submitted just now."""
        backend = self.backend()
        self.wait_for_previous_attempt(backend)
        target = self.target()
        ref = backend.find(target)  # an earlier run of the operator may have submitted already
        adopted = ref is not None
        if ref is None:
            assert self.status.plan is not None
            plan = render_plan(self.job, self.status.plan, self.deps.config, target.attempt)
            self.keep_cancel_token(backend, target)
            self.hold_for_cleanup(backend)
            ref = backend.submit(target, plan, self.timeout_seconds())
        ref.attempt = target.attempt
        # Adopted work counts too: a status write lost before a restart must not read as attempt 0.
        self.status.attempts = max(self.status.attempts, target.attempt)
        self.status.backend_ref = ref
        self.status.start_time = self.status.start_time or now()
        verb = "adopted existing" if adopted else "submitted"
        link = backend.link(ref)
        message = f"{verb} {ref.kind} `{ref.id}`" + (f" ({link})" if link else "")
        if target.attempt > 1:
            message += f" (attempt {target.attempt}, resuming from the last checkpoint)"
        set_condition(
            self.status,
            ConditionType.SUBMITTED,
            "True",
            "Adopted" if adopted else "Submitted",
            message,
            self.gen,
        )
        self.status.message = message
        self.event("Adopted" if adopted else "Submitted", message)
        return not adopted

    def hold_for_cleanup(self, backend: Backend) -> None:
        """Work that Kubernetes' garbage collector cannot remove with the job (a Hugging Face Job, a local
        process) is submitted only once the job holds the operator's finalizer, so deleting the job cancels
        it. A Job in the cluster needs none: its ownerReferences take it, its Secret and its Service with
        the FineTuneJob, and the deletion waits for nobody."""
        if backend.collected_with_job or self.deps.hold_for_cleanup is None:
            return
        self.memory.seen(self.deps.hold_for_cleanup(self.job))

    def keep_cancel_token(self, backend: Backend, target: JobTarget) -> None:
        """Remote work must stay cancellable after its token Secret is gone (a deleted namespace)."""
        where = self.deps.config.operator_namespace
        if backend.needs_token and target.token and where:
            self.deps.kube.keep_cancel_token(where, target.uid, target.token)

    def drop_cancel_token(self) -> None:
        where = self.deps.config.operator_namespace
        if where:
            try:
                self.deps.kube.drop_cancel_token(where, self.job.metadata.uid)
            except (RetryLater, SpecError) as err:  # clean-up never changes the job's outcome
                log.warning("%s (left for the next clean-up)", err.message)

    def wait_for_previous_attempt(self, backend: Backend) -> None:
        """A new attempt starts only once the previous one has stopped (it may still be pushing its last
        checkpoint, which the new attempt resumes from)."""
        previous = self.status.backend_ref
        if previous is None:
            return
        target = _target(self.job, self.deps, with_token=backend.needs_token, attempt=previous.attempt or 1)
        work = backend.poll(target, previous)
        self.observe_cost(previous, work)  # its time until it stopped counts
        if work.state not in TERMINAL_STATES:
            backend.cancel(target, previous)
            which = f"attempt {previous.attempt or 1} ({previous.kind} `{previous.id}`)"
            raise RetryLater(f"waiting for {which} to stop", delay=5)

    # -- monitor -------------------------------------------------------------------------------------
    def tracker(self) -> ProgressTracker:
        tracker = self.memory.tracker
        if tracker is None:
            plan = self.status.plan
            estimate = None
            if plan and plan.tokens and plan.estimated_hours:
                estimate = plan.tokens / (plan.estimated_hours * 3600)
            tracker = ProgressTracker.from_state(
                self.status.monitor,
                progress=self.status.progress,
                outputs=self.status.outputs,
                estimated_tokens_per_second=estimate,
                min_interval_seconds=self.deps.config.status_interval_seconds,
                stall_seconds=self.deps.config.stall_minutes * 60,
            )
            self.memory.tracker = tracker
        return tracker

    def monitor(self) -> None:
        ref = self.status.backend_ref
        assert ref is not None
        backend = self.backend()
        target = self.target(with_token=backend.needs_token)
        work = backend.poll(target, ref)
        self.observe_cost(ref, work)
        self.observe_restarts(ref, work)
        if self.job.spec.suspend and work.state not in TERMINAL_STATES:
            self.suspend_running(backend, target, ref)
            return
        budget = self.job.spec.budget
        if (
            work.state == WorkState.RUNNING
            and budget is not None
            and budget.max_cost_usd is not None
            and self.status.cost is not None
            and self.over_budget(self.status.cost, budget.max_cost_usd)
        ):
            self.stop_for_budget(backend, target, ref, budget.max_cost_usd)
        tracker = self.tracker()
        tracker.key = target.events_key
        if work.state != WorkState.QUEUED:
            # Only what was logged since the last pass (however much), from where that pass stopped reading.
            cursor = tracker.log_cursor
            if not isinstance(cursor, LogCursor) or cursor.work_id != ref.id:
                cursor = tracker.log_cursor = LogCursor(work_id=ref.id)
            for line in backend.logs(target, ref, cursor=cursor):
                tracker.feed(line)
        if work.state == WorkState.RUNNING:
            tracker.mark_running()
            # Past the last step (or with the model already pushed) the run is publishing: merge, GGUF, push.
            total = tracker.progress.total_steps
            publishing = (
                bool(tracker.outputs.model)
                or tracker.finished
                or (total is not None and tracker.progress.step >= total)
            )
            reason = "Publishing" if publishing else "Running"
            message = f"training on {self.status.plan.target if self.status.plan else ref.kind}"
            if set_condition(self.status, ConditionType.TRAINING, "True", reason, message, self.gen):
                self.event("TrainingStarted", message)
        elif work.state == WorkState.QUEUED:
            self.requeued(work)
        self.absorb(tracker)
        if work.state in TERMINAL_STATES:
            self.finish(work.state, work.reason, work.message, tracker)
        elif backend.watched:
            # Its Job's and pods' changes wake it; until then only its log and cost need a look, rarely.
            self.memory.rest = self.deps.config.watched_poll_seconds

    def requeued(self, work: WorkStatus) -> None:
        """The work waits (for GPUs, for a queue's quota) — again, when a queue took its GPUs back from a
        running attempt (Kueue's preemption): it shows Queued with the queue's reason, not Running."""
        if work.message:
            self.status.message = work.message
        training = get_condition(self.status, ConditionType.TRAINING)
        if work.preempted and training is not None and training.status == "True":
            message = work.message or "the run was stopped and waits to be admitted again"
            set_condition(self.status, ConditionType.TRAINING, "False", "Requeued", message, self.gen)
            self.event("Requeued", message, warning=True)

    def observe_restarts(self, ref: WorkRef, work: WorkStatus) -> None:
        """A run the backend restarted itself (a Job's failed pod) is said, not hidden in the attempt."""
        if work.restarts <= (ref.restarts or 0):
            return
        ref.restarts = work.restarts  # `ref` is the status's own backendRef
        limit = self.deps.config.job_backoff_limit
        self.event(
            "RunRestarted",
            f"{ref.kind} {ref.id}: a run failed and the backend started another ({work.restarts} so far, at most "
            f"{limit}); it resumes from the last checkpoint",
            warning=True,
        )

    def observe_cost(self, ref: WorkRef, work: WorkStatus) -> None:
        if self.status.cost is None and work.started_at is None and work.state not in TERMINAL_STATES:
            return  # nothing has run, nothing is spent: no report (and no status write) for a queued run yet
        if self.status.plan is not None:
            self.status.cost = observe(
                self.status.cost, self.status.plan, ref.attempt or 1, work, datetime.now(UTC)
            )

    def stop_for_budget(self, backend: Backend, target: JobTarget, ref: WorkRef, max_cost_usd: float) -> None:
        """The run would pass `maxCostUSD` before the next poll and its stop: stop it now (the runtime
        checkpoints on SIGTERM); the job blocks with `BudgetExceeded` until the budget is raised."""
        backend.cancel(target, ref)
        message = self.spent_message(max_cost_usd)
        self.end_attempt(BUDGET_STOPPED, message)
        raise SpecError("BudgetExceeded", message)

    def suspend_running(self, backend: Backend, target: JobTarget, ref: WorkRef) -> None:
        """`suspend: true` on a started run: stop it (the runtime checkpoints on SIGTERM); unsuspending
        resumes from that checkpoint as a new attempt."""
        backend.cancel(target, ref)
        message = (
            f"suspended: attempt {target.attempt} stopped after saving a checkpoint; "
            "set `spec.suspend: false` to resume from it"
        )
        self.end_attempt(SUSPENDED, message)
        self.event("Suspended", message)

    def end_attempt(self, reason: str, message: str) -> None:
        """The live attempt is over and another may follow: `backendRef` stays on it (history, and the
        immutability of the training fields), `Submitted` turns False."""
        set_condition(self.status, ConditionType.SUBMITTED, "False", reason, message, self.gen)
        set_condition(self.status, ConditionType.TRAINING, "False", reason, message, self.gen)
        self.status.message = message
        self.memory.tracker = None

    def absorb(self, tracker: ProgressTracker) -> None:
        update = tracker.take_update()
        if update is not None:
            self.status.progress = update
        # The tracker started from status.outputs, so its copy is always the newer one; but what is pushed to
        # the Hub is set only once the Hub shows it (`confirm_push`), never from the log's claim.
        confirmed = self.status.outputs or Outputs()
        outputs = tracker.outputs.model_copy(deep=True)
        if self.job.spec.output and self.job.spec.output.repo:
            outputs.model, outputs.gguf = confirmed.model, list(confirmed.gguf)
        self.status.outputs = outputs if outputs != Outputs() else None  # none yet: nothing to write
        self.status.monitor = tracker.state()
        for warning in tracker.warnings():
            self.event(str(warning.reason), warning.message, warning=True)
        self.pushed_conditions(outputs)
        if self.status.plan and self.status.progress:
            plan = self.status.plan
            elapsed_cost = self.status.cost.actual_usd if self.status.cost else None
            self.deps.metrics.update_job(
                self.labels(), self.status.progress, plan.estimated_cost_usd, elapsed_cost
            )

    def pushed_conditions(self, outputs: Outputs) -> None:
        if outputs.model:
            set_condition(self.status, ConditionType.MODEL_PUSHED, "True", "Pushed", outputs.model, self.gen)
        if outputs.gguf:
            set_condition(
                self.status, ConditionType.GGUF_PUSHED, "True", "Pushed", ", ".join(outputs.gguf), self.gen
            )

    def labels(self) -> JobLabels:
        plan = self.status.plan
        return JobLabels(
            namespace=self.job.metadata.namespace,
            name=self.job.metadata.name,
            method=self.job.spec.method.value,
            backend=plan.backend if plan else "",
        )

    def finish(self, state: WorkState, reason: str, message: str, tracker: ProgressTracker) -> None:
        if state == WorkState.SUCCEEDED:
            self.confirm_push()  # before anything is final: a Hub that cannot answer now is asked again
        self.drop_cancel_token()  # the work has ended: nothing is left to cancel
        final = tracker.take_update() or tracker.progress
        self.status.progress = final.model_copy(deep=True)
        self.status.completion_time = now()
        set_condition(self.status, ConditionType.TRAINING, "False", "Finished", state.value, self.gen)
        if state == WorkState.SUCCEEDED:
            outputs = self.status.outputs or Outputs()
            where = outputs.model or "the backend's output folder"
            message = f"training finished; model at {where}" + (
                f"; GGUF: {', '.join(outputs.gguf)}" if outputs.gguf else ""
            )
            set_condition(self.status, ConditionType.COMPLETE, "True", "Succeeded", message, self.gen)
            self.status.message = message
            self.event("Succeeded", message)
            return
        if state == WorkState.CANCELLED:
            self.fail("Cancelled", message or "the backend run was cancelled")
            return
        runtime_error = tracker.error
        if runtime_error is not None and runtime_error.reason in RETRIED_REASONS:
            reason, message = runtime_error.reason or reason, runtime_error.message or message
        elif runtime_error is not None and runtime_error.reason:
            self.fail(runtime_error.reason, runtime_error.message or message)
            return
        if self.retry_attempt(reason, message):
            return
        self.fail(reason or "TrainingFailed", message or "the training run failed")

    def confirm_push(self) -> None:
        """Outputs come from the Hub, not from the run's log: the `published` line can be missing (a log
        stream that ended early) or printed by anything the run printed."""
        spec = self.job.spec
        if spec.output is None or not spec.output.repo:
            return
        endpoint = self.deps.config.hf_endpoint
        confirm = partial(
            self.deps.confirm_push,
            job_uid=self.job.metadata.uid,
            token=self.target().token,
            endpoint=endpoint,
        )
        confirm(spec.output.repo, suffixes=WEIGHT_SUFFIXES)
        outputs = self.status.outputs = self.status.outputs or Outputs()
        outputs.model = repo_url(spec.output.repo, endpoint)
        gguf_repo = spec.gguf_repo()
        if gguf_repo:
            files = confirm(gguf_repo, suffixes=(".gguf",))
            outputs.gguf = [f"{repo_url(gguf_repo, endpoint)}/blob/main/{name}" for name in sorted(files)]
        self.pushed_conditions(outputs)

    def retry_attempt(self, reason: str, message: str) -> bool:
        """An attempt that died without the runtime's own error (a preempted node, a killed process, an
        infrastructure error) is resubmitted, resuming from the last checkpoint, up to the configured
        number of attempts. Backends that retry on their own (a Job's backoffLimit) are not doubled."""
        backend = self.backend()
        limit = self.deps.config.max_attempts
        # A Job spanning several nodes does not restart one node's pod alone (half a process group cannot
        # go on): its attempt ends, and the next one starts every node afresh from the last checkpoint.
        plan = self.status.plan
        retries_itself = backend.retries_itself and not (plan is not None and plan.nodes > 1)
        if retries_itself or reason in {"Timeout", "Cancelled"} or self.status.attempts >= limit:
            return False
        text = (
            f"attempt {self.status.attempts} ended ({reason or 'failed'}: "
            f"{message or 'no message'}); attempt {self.status.attempts + 1} of {limit} resumes from the "
            "last checkpoint"
        )
        self.end_attempt(ATTEMPT_ENDED, text)
        self.status.completion_time = None
        self.event("Retrying", text, warning=True)
        return True


def _reference_answer_column(spec: FineTuneJobSpec) -> str | None:
    """The column GRPO's built-in Accuracy reward reads (it is the default reward), else None."""
    if spec.method != Method.GRPO:
        return None
    rewards = spec.rewards or [RewardSpec(type=RewardType.ACCURACY)]
    accuracy = [r for r in rewards if r.type == RewardType.ACCURACY]
    return (accuracy[0].answer_column or "answer") if accuracy else None


def reconcile(job: FineTuneJob, deps: Deps, memory: JobMemory) -> Outcome:
    """Carry the job one step further; see the module docstring. Callers hold `memory.lock` (the job's own
    :class:`JobMemory`, which this pass reads and updates)."""
    backoff = memory.backoff
    if backoff and backoff.generation == job.metadata.generation and time.monotonic() < backoff.not_before:
        return Outcome(job.status)  # a watch event while waiting; a spec edit (new generation) goes on
    memory.rest = None
    outcome = Reconciler(job, deps, memory).run()
    if job.status.phase != outcome.status.phase:
        deps.metrics.job_phase_changed(
            f"{job.metadata.namespace}/{job.metadata.name}",
            job.status.phase.value,
            outcome.status.phase.value,
        )
    return outcome


def mark_failed(status: FineTuneJobStatus, reason: str, message: str, generation: int) -> bool:
    """Set `Failed=True` and `Complete=False` for this generation; True when `Failed` changed."""
    changed = set_condition(status, ConditionType.FAILED, "True", reason, message, generation)
    set_condition(status, ConditionType.COMPLETE, "False", reason, message, generation)
    status.message = message
    status.completion_time = status.completion_time or now()
    return changed


MALFORMED_SPEC = "InvalidSpec"
"""Failure reason for a FineTuneJob body the API models refuse (admission let it through)."""


_UNION_MEMBERS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}
_SHAPES = {
    dict: "a map",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


def describe_validation_error(error: ValidationError, limit: int = 5) -> str:
    """Each refused field as `spec.a.b`: what it must be. A union's per-member errors read as one."""
    by_field: dict[tuple[Any, ...], list[Any]] = {}
    for err in error.errors(include_url=False):
        loc = tuple(err["loc"])
        is_member = len(loc) > 1 and loc[-1] in _UNION_MEMBERS
        by_field.setdefault(loc[:-1] if is_member else loc, []).append(err)
    parts = []
    for loc, errs in list(by_field.items())[:limit]:
        path = ".".join(str(part) for part in loc)
        members = [_UNION_MEMBERS[e["loc"][-1]] for e in errs if e["loc"] and e["loc"][-1] in _UNION_MEMBERS]
        if len(members) > 1:
            got = _SHAPES.get(type(errs[0].get("input")), type(errs[0].get("input")).__name__)
            parts.append(f"`{path}` must be {', '.join(members[:-1])} or {members[-1]}, not {got}")
        else:
            parts.append(f"`{path}`: {errs[0]['msg']}")
    return "; ".join(parts)


def reject_malformed(body: dict[str, Any], error: ValidationError) -> Outcome:
    """Fail a FineTuneJob whose spec the API models cannot read, naming each field and what is wrong.

    The API server's schema and CEL rules catch nearly everything; what they cannot express (e.g. a
    nested value under `extraArgs`) would otherwise escape every reconcile and be retried forever with
    no status. Failed is for this generation: an edit that fixes the field re-evaluates the job.
    """
    message = (
        f"the spec cannot be read: {describe_validation_error(error)}. Fix the field(s) and apply again."
    )
    generation = int(body.get("metadata", {}).get("generation") or 0)
    try:
        status = FineTuneJobStatus.model_validate(body.get("status") or {})
    except ValidationError:
        status = FineTuneJobStatus()
    events = []
    if mark_failed(status, MALFORMED_SPEC, message, generation):
        events.append(EventRecord("Warning", MALFORMED_SPEC, message))
    status.phase = summarise_phase(status)
    status.observed_generation = generation
    return Outcome(status, events)


def cancel_work(job: FineTuneJob, deps: Deps) -> str | None:
    """Cancel the job's backend work (on deletion). Returns what was done, for the log.

    Callers hold the job's `JobMemory.lock` and pass a fresh read, so a pass that began before the deletion
    has finished (and written any submission) first; the lookup by label covers a lost status write.
    """
    plan = job.status.plan
    if plan is None:
        # The pass that planned and submitted may have lost its status write: look on every backend.
        done = [_cancel_on(job, deps, backend) for backend in deps.backends.values()]
        return "; ".join(d for d in done if d) or None
    backend = deps.backends.get(plan.backend)
    return _cancel_on(job, deps, backend) if backend is not None else None


def _cancel_on(job: FineTuneJob, deps: Deps, backend: Backend) -> str | None:
    """Cancel the job's work on one backend: the attempt in status, and the next one (found by label)."""
    ref = job.status.backend_ref
    # The live attempt, and the next one (submitted by a pass whose status write was lost).
    attempts = sorted({(ref.attempt or 1) if ref else 1, job.status.attempts + 1})
    found: list[WorkRef | None] = [ref]
    kept_in = deps.config.operator_namespace
    for attempt in attempts:
        try:
            target = _target(job, deps, with_token=backend.needs_token, attempt=attempt)
        except SpecError:
            # The user's Secret is gone (a deleted namespace): use the copy kept while the work ran.
            kept = deps.kube.read_cancel_token(kept_in, job.metadata.uid) if kept_in else None
            if kept is None:
                # Nothing remote can be cancelled; the finalizer must not hang on it.
                return "token unavailable: remote work (if any) left to its own timeout"
            target = _target(job, deps, with_token=False, attempt=attempt).model_copy(update={"token": kept})
        found.append(backend.find(target))
    done = []
    for work in {r.id: r for r in found if r is not None}.values():
        if backend.poll(target, work).state not in TERMINAL_STATES:
            backend.cancel(target, work)
            done.append(f"cancelled {work.kind} {work.id}")
    if kept_in:
        deps.kube.drop_cancel_token(kept_in, job.metadata.uid)
    return "; ".join(done) or None
