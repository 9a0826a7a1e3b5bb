"""The HF Jobs backend: `ftjob train` in the trainer image on Hugging Face Jobs, through huggingface_hub."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from huggingface_hub import HfApi, JobInfo
from huggingface_hub.errors import HfHubHTTPError

from finetune_operator.backends.base import (
    TERMINAL_STATES,
    JobTarget,
    LogCursor,
    WorkRef,
    WorkState,
    WorkStatus,
)
from finetune_operator.cluster.identity import (
    HF_ATTEMPT_LABEL,
    HF_NAME_LABEL,
    HF_NAMESPACE_LABEL,
    HF_UID_LABEL,
    is_attempt,
)
from finetune_operator.config import OperatorConfig
from finetune_operator.errors import RetryLater, SpecError
from finetune_operator.hub import hf_job_log_lines, hub_error
from finetune_training.events import KEY_ENV as EVENTS_KEY_ENV
from finetune_training.plan import TrainingPlan

if TYPE_CHECKING:
    from finetune_operator.cluster.watched import WatchedWork

log = logging.getLogger(__name__)

PLAN_ENV = "FTJOB_PLAN"
HF_TIMEOUT_LABEL = "ftjob-timeout"
"""The job's timeout in seconds, so an ERROR can be told a timeout by how long it ran, whatever the Hub says."""
TIMEOUT_WORDS = re.compile(r"\btime[ds]?[\s_-]*out\b|deadline|time limit|max(imum)? duration", re.IGNORECASE)
"""How a Jobs status message may say it timed out (`Job timed out after 2h`, `Timeout`, ...)."""
ACCOUNT_TTL_SECONDS = 600.0
"""How long a token's account name is reused: the Hub rate-limits `whoami`, and every find and submit
needs the namespace."""
ACCOUNT_CACHE_SIZE = 1024
LISTING_LAG_S = 300.0
"""How long a job just submitted may be missing from `list_jobs`: the Hub's listing lags its writes, so a
label lookup right after a submit can miss the job."""
LISTING_RECHECK_S = 15.0
LOG_SILENCE_S = 4.5
"""A read without `follow` that got nothing for this long was ended by the client's 5 s read timeout: the log
stream lagged or stalled, it did not end."""
SHORT_READ_RETRIES = 3
"""How often the read of an ended job's logs is redone when it was cut short, before the job is judged anyway."""

STAGES = {
    "SCHEDULING": WorkState.QUEUED,
    "RUNNING": WorkState.RUNNING,
    "COMPLETED": WorkState.SUCCEEDED,
    "ERROR": WorkState.FAILED,
    "CANCELED": WorkState.CANCELLED,
    "DELETED": WorkState.FAILED,
}


@dataclass
class _Submission:
    """A `run_job` of this process, remembered until the listing shows the job (or LISTING_LAG_S)."""

    at: float
    ref: WorkRef | None
    """None: the Hub's answer was lost (a 5xx, a timeout), so the job may or may not exist."""


class HFJobsBackend:
    """Submits, adopts, polls, streams and cancels Hugging Face Jobs."""

    kind = "HFJob"
    needs_token = True
    retries_itself = False
    collected_with_job = False  # remote work: deleting the job must cancel it
    watched = False  # its work is not in the cluster: no watch pushes its changes
    listing_lag_s = LISTING_LAG_S

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        # sha256(token) -> (looked up at, account name): the token itself is never kept as a key.
        self._accounts: dict[str, tuple[float, str]] = {}
        self._accounts_lock = threading.Lock()
        # (uid, attempt) -> the last submit: what `find` answers while the listing does not show it yet.
        self._submissions: dict[tuple[str, int], _Submission] = {}
        self._submissions_lock = threading.Lock()
        # job id -> short reads so far, for the jobs a poll saw ended (their logs are read one last time).
        self._ended: dict[str, int] = {}

    def _api(self, target: JobTarget) -> HfApi:
        if not target.token:
            raise SpecError(
                "TokenMissing",
                "`backend: HFJobs` needs a Hugging Face token: set `spec.tokenSecretRef` to a Secret holding one "
                "(or configure the operator's default token Secret)",
            )
        return HfApi(endpoint=self.config.hf_endpoint, token=target.token)

    def _namespace(self, api: HfApi) -> str:
        if self.config.hf_namespace:
            return self.config.hf_namespace
        key = hashlib.sha256(str(api.token).encode()).hexdigest()
        now = time.monotonic()
        with self._accounts_lock:
            cached = self._accounts.get(key)
        if cached and now - cached[0] < ACCOUNT_TTL_SECONDS:
            return cached[1]
        try:
            name = str(api.whoami()["name"])
        except Exception as exc:
            raise hub_error(exc, "looking up the token's account") from None
        with self._accounts_lock:
            if len(self._accounts) >= ACCOUNT_CACHE_SIZE:
                del self._accounts[min(self._accounts, key=lambda k: self._accounts[k][0])]
            self._accounts[key] = (now, name)
        return name

    def find(self, target: JobTarget) -> WorkRef | None:
        """The HF Job labelled with this FineTuneJob's UID (the newest, if several).

        The listing lags: a job this process submitted moments ago is answered from memory, and one whose
        submit got no answer is waited for (RetryLater) for up to `listing_lag_s` before None lets the
        caller submit again, so a lost response never pays for a second job.
        """
        api = self._api(target)
        namespace = self._namespace(api)
        try:
            jobs = list(api.list_jobs(labels={HF_UID_LABEL: target.uid}, namespace=namespace))
        except Exception as exc:
            raise hub_error(exc, "listing HF Jobs") from None
        jobs = [j for j in jobs if is_attempt(j.labels, HF_ATTEMPT_LABEL, target.attempt)]
        key = (target.uid, target.attempt)
        if not jobs:
            return self._submitted(key)
        with self._submissions_lock:
            self._submissions.pop(key, None)
        job = max(jobs, key=lambda j: j.created_at.timestamp() if j.created_at else 0)
        return WorkRef(kind=self.kind, id=job.id, namespace=namespace, url=job.url, attempt=target.attempt)

    def _submitted(self, key: tuple[str, int]) -> WorkRef | None:
        """What this process submitted for `key` that the listing may not show yet."""
        now = time.monotonic()
        with self._submissions_lock:
            for stale in [k for k, s in self._submissions.items() if now - s.at >= self.listing_lag_s]:
                del self._submissions[stale]
            submission = self._submissions.get(key)
        if submission is None:
            return None
        if submission.ref is not None:
            return submission.ref.model_copy()
        left = self.listing_lag_s - (now - submission.at)
        raise RetryLater(
            f"the Hub's answer to submitting attempt {key[1]} was lost, so the HF Job may exist; the job "
            f"listing can lag, so it is looked up again before submitting another (for {left:.0f}s more)",
            delay=LISTING_RECHECK_S,
        )

    def _remember(self, key: tuple[str, int], ref: WorkRef | None) -> None:
        with self._submissions_lock:
            self._submissions[key] = _Submission(at=time.monotonic(), ref=ref)

    def submit(self, target: JobTarget, plan: TrainingPlan, timeout_seconds: int) -> WorkRef:
        """Run the trainer image with the plan in the environment and the token as a Jobs secret."""
        api = self._api(target)
        namespace = self._namespace(api)
        env = {
            PLAN_ENV: base64.b64encode(
                plan.model_dump_json(by_alias=True, exclude_none=True).encode()
            ).decode(),
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        if self.config.hf_endpoint:
            env["HF_ENDPOINT"] = self.config.hf_endpoint
        labels = {
            HF_UID_LABEL: target.uid,
            HF_ATTEMPT_LABEL: str(target.attempt),
            HF_NAME_LABEL: target.name[:63],
            HF_NAMESPACE_LABEL: target.namespace[:63],
            HF_TIMEOUT_LABEL: str(timeout_seconds),
        }
        # Jobs secrets are hidden from the job's spec and logs, unlike `env`.
        secrets = {"HF_TOKEN": target.token}
        if target.events_key:
            secrets[EVENTS_KEY_ENV] = target.events_key
        try:
            job = api.run_job(
                image=self.config.trainer_image,
                command=list(self.config.trainer_command),
                env=env,
                secrets=secrets,
                flavor=plan.resources.flavor or "cpu-basic",
                timeout=timeout_seconds,
                labels=labels,
                namespace=namespace,
            )
        except Exception as exc:
            if not _refused(exc):  # a 5xx or a timeout: the Hub may have created the job anyway
                self._remember((target.uid, target.attempt), None)
            raise hub_error(exc, "submitting the HF Job") from None
        ref = WorkRef(kind=self.kind, id=job.id, namespace=namespace, url=job.url, attempt=target.attempt)
        self._remember((target.uid, target.attempt), ref)
        return ref

    def poll(self, target: JobTarget, ref: WorkRef) -> WorkStatus:
        """Map the job's stage onto a WorkState, with the Hub's message as the reason."""
        api = self._api(target)
        try:
            job = api.inspect_job(job_id=ref.id, namespace=ref.namespace)
        except HfHubHTTPError as exc:
            if exc.response is not None and exc.response.status_code == 404:
                return WorkStatus(
                    state=WorkState.FAILED, reason="BackendWorkLost", message=f"HF Job {ref.id} is gone"
                )
            raise hub_error(exc, "inspecting the HF Job") from None
        except Exception as exc:
            raise hub_error(exc, "inspecting the HF Job") from None
        stage = str(getattr(job.status.stage, "value", job.status.stage))
        state = STAGES.get(stage, WorkState.QUEUED)
        message = job.status.message or ""
        # ERROR says only `Job failed with exit code: N`; the runtime's signed error event in the logs, when
        # there is one, is what the operator reports instead.
        reason = {"ERROR": "HFJobError", "CANCELED": "Cancelled", "DELETED": "BackendWorkLost"}.get(
            stage, stage.title()
        )
        if stage == "ERROR" and _timed_out(job, message):
            reason = "Timeout"
        if state in TERMINAL_STATES:
            if len(self._ended) >= ACCOUNT_CACHE_SIZE:
                self._ended.clear()  # only the last reads of jobs ending now need it
            self._ended.setdefault(ref.id, 0)
        return WorkStatus(
            state=state, reason=reason, message=message, started_at=job.started_at, ended_at=job.finished_at
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
        """The job's log lines (server-sent events), as far as they go now (or until the end with follow).

        With `cursor`: the lines after the number it has consumed (the Jobs API reads a log whole or its last N
        lines, nothing in between: the stream is read from its start and the lines already consumed are skipped
        without counting against the read's time budget).

        A read without `follow` that the stream cut short (broken off, or silent past the client's read timeout)
        ends quietly while the job runs: the next pass reads the tail again. Once a poll saw the job end, this
        read is its last, so a short one raises RetryLater (up to SHORT_READ_RETRIES times) rather than let the
        job be judged without its last events (the runtime's error, its push).
        """
        api = self._api(target)
        last = time.monotonic()
        cut = ""
        try:
            if cursor is not None and not follow:
                lines = hf_job_log_lines(api, ref.id, ref.namespace, skip=cursor.lines)
            else:
                lines = hf_job_log_lines(api, ref.id, ref.namespace, follow=follow, tail=tail)
            for line in lines:
                last = time.monotonic()
                if cursor is not None and not follow:
                    cursor.lines += 1
                yield line
        except HfHubHTTPError as exc:
            raise hub_error(exc, "reading HF Job logs") from None
        except Exception as exc:  # a dropped connection, an incomplete chunked body
            if follow:
                raise hub_error(exc, "reading HF Job logs") from None
            cut = f"the log stream broke off ({type(exc).__name__})"
        if not cut and not follow and time.monotonic() - last >= LOG_SILENCE_S:
            cut = f"the log stream sent nothing for {LOG_SILENCE_S:.0f}s"
        short_reads = self._ended.get(ref.id)
        if short_reads is None:
            return
        if cut and short_reads < SHORT_READ_RETRIES:
            self._ended[ref.id] = short_reads + 1
            raise RetryLater(f"reading the ended HF Job's logs: {cut}; reading them again", delay=5)
        if cut:
            log.warning("HF Job %s: %s; judging it on the logs read so far", ref.id, cut)
        self._ended.pop(ref.id, None)

    def watch_from(self, seen: WatchedWork) -> None:
        """Nothing to read from the cluster's watches: its work runs outside the cluster."""

    def link(self, ref: WorkRef) -> str | None:
        """The job's page on the Hub."""
        return ref.url

    def cancel(self, target: JobTarget, ref: WorkRef) -> None:
        """Cancel the job; a job already ended or gone needs nothing."""
        api = self._api(target)
        try:
            api.cancel_job(job_id=ref.id, namespace=ref.namespace)
        except HfHubHTTPError as exc:
            if exc.response is not None and exc.response.status_code in (404, 409):
                return
            raise hub_error(exc, "cancelling the HF Job") from None


def _refused(exc: Exception) -> bool:
    """Whether the Hub answered a request with a 4xx: it refused it, so nothing was created."""
    return isinstance(exc, HfHubHTTPError) and exc.response is not None and exc.response.status_code < 500


def _timed_out(job: JobInfo, message: str) -> bool:
    """Whether an ERROR job was stopped by its timeout: it ran at least as long as the timeout it was given,
    or the Hub's message says so (a job submitted without the label)."""
    limit = (job.labels or {}).get(HF_TIMEOUT_LABEL, "")
    start = job.started_at or job.created_at
    if limit.isdigit() and start and job.finished_at:
        ran = (job.finished_at - start).total_seconds()
        if ran >= int(limit) - 2:  # the Hub's times have a second's resolution
            return True
    return bool(TIMEOUT_WORDS.search(message))
