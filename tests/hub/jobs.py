"""Local job runner behind the Jobs API: each job's command runs as a process on this machine.

The docker image is ignored. The process gets its own session (so cancel and timeout kill the whole group),
the stand-in's environment minus Hub credentials/offline switches, then ``HF_ENDPOINT`` (this stand-in),
``HF_HUB_DISABLE_XET=1`` and ``PYTHONUNBUFFERED=1`` unless the job sets them, then the job's environment and
secrets. The directory of the running Python is put first on ``PATH``, so ``python`` and ``ftjob`` are the
venv's. stdout and stderr, merged, are the job's logs; they are kept in memory and in
``{data_dir}/jobs/{id}.log`` for replay.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.hub.auth import TokenOwner, account_id
from tests.hub.models import (
    TERMINAL_STAGES,
    JobDurations,
    JobInfoResponse,
    JobInitiator,
    JobOwner,
    JobSpecRequest,
    JobStageName,
    JobStatus,
)

KILL_GRACE_S = 5.0
"""Seconds between SIGTERM and SIGKILL when a job is canceled or times out."""
DEFAULT_TIMEOUT_S = 1800.0
"""A job created without `timeoutSeconds` is stopped after 30 minutes, as on HF Jobs."""
_STRIPPED_ENV = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE",
)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class LogLine:
    """One log event."""

    timestamp: str
    """ISO time the line was read."""
    data: str
    """The line, without its newline."""


@dataclass
class Job:
    """A submitted job and its live state."""

    id: str
    namespace: str
    namespace_type: str
    creator: TokenOwner
    spec: JobSpecRequest
    created_at: datetime
    stage: JobStageName = "SCHEDULING"
    message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    logs: list[LogLine] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def terminal(self) -> bool:
        """Whether the job has ended."""
        return self.stage in TERMINAL_STAGES

    def info(self) -> JobInfoResponse:
        """The job as the Jobs API returns it (secret values are never included)."""
        now = datetime.now(UTC)
        end = self.finished_at or now
        scheduling_end = self.started_at or (self.finished_at if self.terminal else now)
        return JobInfoResponse(
            id=self.id,
            created_at=_iso(self.created_at),
            started_at=_iso(self.started_at) if self.started_at else None,
            finished_at=_iso(self.finished_at) if self.finished_at else None,
            docker_image=self.spec.docker_image,
            space_id=self.spec.space_id,
            command=self.spec.command,
            arguments=self.spec.arguments,
            environment=self.spec.environment,
            secrets={name: None for name in self.spec.secrets},
            flavor=self.spec.flavor,
            labels=self.spec.labels or None,
            volumes=self.spec.volumes,
            timeout=self.spec.timeout_seconds,
            retry=None if self.spec.attempts is None else max(self.spec.attempts - 1, 0),
            status=JobStatus(stage=self.stage, message=self.message),
            durations=JobDurations(
                scheduling_secs=int(((scheduling_end or now) - self.created_at).total_seconds()),
                running_secs=int((end - self.started_at).total_seconds()) if self.started_at else None,
                total_secs=int((end - self.created_at).total_seconds()),
            ),
            owner=JobOwner(id=account_id(self.namespace), name=self.namespace, type=self.namespace_type),
            initiator=JobInitiator(type="user", id=account_id(self.creator.user), name=self.creator.user),
        )


class JobRunner:
    """Runs jobs as local processes and keeps their state.

    Parameters
    ----------
    data_dir : Path
        Where ``jobs/{id}.log`` files and job working directories go.
    hub_url : Callable[[], str]
        Returns the stand-in's URL, injected as ``HF_ENDPOINT``.
    start_delay_s : float
        Time a job spends in SCHEDULING before its process starts.
    """

    def __init__(self, data_dir: Path, hub_url: Callable[[], str], start_delay_s: float = 0.0) -> None:
        self.dir = Path(data_dir) / "jobs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hub_url = hub_url
        self.start_delay_s = start_delay_s
        self.page_size = 50
        """Jobs per page of `GET /api/jobs/{namespace}` (the rest follows a `Link: rel="next"` header)."""
        self.default_timeout_s = DEFAULT_TIMEOUT_S
        """Limit of a job created without a timeout."""
        self.scheduling_message = "Waiting for {flavor} hardware to become available"
        """Status message while a job is in SCHEDULING (`{flavor}`: its flavor), as the Hub says why it waits."""
        self.timeout_message = "Job timed out after {limit}"
        """Status message of a timed-out job (`{limit}` reads `30m`); a test may reword it."""
        self.listing_lag_s = 0.0
        """How long a new job is missing from `GET /api/jobs/{namespace}` (the Hub's listing lags its
        writes); `GET /api/jobs/{namespace}/{id}` knows it at once."""
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def submit(self, namespace: str, namespace_type: str, creator: TokenOwner, spec: JobSpecRequest) -> Job:
        """Record a job in SCHEDULING and start running it in the background.

        Returns
        -------
        Job
            The new job.
        """
        job = Job(
            id=secrets.token_hex(12),
            namespace=namespace,
            namespace_type=namespace_type,
            creator=creator,
            spec=spec,
            created_at=datetime.now(UTC),
            message=self.scheduling_message.format(flavor=spec.flavor),
        )
        with self._lock:
            self._jobs[job.id] = job
        thread = threading.Thread(target=self._run, args=(job,), name=f"hub-job-{job.id}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return job

    def get(self, namespace: str, job_id: str) -> Job | None:
        """The job ``job_id`` of ``namespace``, or ``None``."""
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.namespace == namespace else None

    def wait_ended(self, namespace: str, job_id: str, timeout: float = 60.0) -> Job | None:
        """The job once it has ended (a cancel takes effect when the run has exited, as on HF Jobs), or
        as it is after `timeout` seconds; None when there is no such job."""
        deadline = time.monotonic() + timeout
        while (job := self.get(namespace, job_id)) is not None and not job.terminal:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        return job

    def list(self, namespace: str, stages: list[str], labels: dict[str, str]) -> list[Job]:
        """Jobs of ``namespace``, newest first, with any of ``stages`` (if given) and all ``labels``."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.namespace == namespace]
        jobs = [j for j in jobs if not stages or j.stage in stages]
        jobs = [j for j in jobs if all(j.spec.labels.get(k) == v for k, v in labels.items())]
        return sorted(jobs, key=lambda j: j.created_at, reverse=True)

    def listed(self, job: Job) -> bool:
        """Whether the listing shows ``job`` yet (see ``listing_lag_s``)."""
        return job.created_at <= datetime.now(UTC) - timedelta(seconds=self.listing_lag_s)

    def cancel(self, job: Job) -> None:
        """Cancel ``job``: kill its process group (SIGTERM, then SIGKILL); it ends CANCELED."""
        job.cancel_requested.set()
        with job.lock:
            process = job.process
        if process is not None:
            _terminate_group(process)

    def shutdown(self) -> None:
        """Cancel every running job and wait for the runner threads."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            if not job.terminal:
                self.cancel(job)
        for thread in self._threads:
            thread.join(timeout=KILL_GRACE_S + 5)

    # ---- the run itself -------------------------------------------------------------------------

    def _environment(self, spec: JobSpecRequest) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _STRIPPED_ENV}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env["HF_ENDPOINT"] = self.hub_url()
        env["HF_HUB_DISABLE_XET"] = "1"  # the stand-in speaks LFS only
        env["PYTHONUNBUFFERED"] = "1"  # logs stream line by line, as users of HF Jobs set it
        env.update(spec.environment)
        env.update(spec.secrets)
        return env

    def _log(self, job: Job, text: str) -> None:
        line = LogLine(timestamp=_iso(datetime.now(UTC)), data=text)
        with job.lock:
            job.logs.append(line)
        with (self.dir / f"{job.id}.log").open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")

    def _finish(self, job: Job, stage: JobStageName, message: str | None) -> None:
        with job.lock:
            job.stage = stage
            job.message = message
            job.finished_at = datetime.now(UTC)

    def _run(self, job: Job) -> None:
        if job.cancel_requested.wait(self.start_delay_s):
            self._finish(job, "CANCELED", "Job canceled before it started")
            return
        argv = [*job.spec.command, *job.spec.arguments]
        workdir = self.dir / job.id
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            process = subprocess.Popen(
                argv,
                env=self._environment(job.spec),
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: cancel/timeout kill the whole tree
            )
        except OSError as exc:
            self._finish(job, "ERROR", f"Failed to start {argv[0] if argv else 'job'}: {exc}")
            return
        with job.lock:
            job.process = process
            job.stage = "RUNNING"
            job.message = None
            job.started_at = datetime.now(UTC)
        self._log(job, f"===== Job started at {_iso(job.started_at)} =====")
        if job.cancel_requested.is_set():
            _terminate_group(process)
        reader = threading.Thread(target=self._read, args=(job, process), daemon=True)
        reader.start()
        timed_out = False
        limit = job.spec.timeout_seconds or self.default_timeout_s
        try:
            process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            _terminate_group(process)
            process.wait()
        reader.join()
        if job.cancel_requested.is_set():
            self._finish(job, "CANCELED", "Job canceled by user")
        elif timed_out:
            self._finish(job, "ERROR", self.timeout_message.format(limit=_duration(limit)))
        elif process.returncode == 0:
            self._finish(job, "COMPLETED", None)
        else:  # the Hub's words; the cause is only in the logs
            self._finish(job, "ERROR", f"Job failed with exit code: {process.returncode}")

    def _read(self, job: Job, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            self._log(job, raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        process.stdout.close()


def _duration(seconds: float) -> str:
    """`30m`, `2h`, `1h30m`, `45s`: how the Jobs API and CLI write a timeout."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


def _terminate_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it if still alive after :data:`KILL_GRACE_S`."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def _kill_later() -> None:
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):  # also kills children that outlived the leader
            os.killpg(process.pid, signal.SIGKILL)
