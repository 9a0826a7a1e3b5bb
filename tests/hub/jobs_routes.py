"""Jobs HTTP API (``/api/jobs/...``) as ``huggingface_hub`` 2.4.0 calls it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from tests.hub.auth import TokenOwner
from tests.hub.faults import FaultInjector, LogFault
from tests.hub.hardware import flavor_names, hardware_catalog
from tests.hub.hub_routes import HubContext, error, require_owner
from tests.hub.jobs import Job, JobRunner
from tests.hub.models import JobSpecRequest

KEEP_ALIVE_S = 30.0
"""The Hub sends an SSE comment this often on a silent log stream."""
_POLL_S = 0.05


class LogStreamDropped(Exception):
    """Raised inside a log stream to cut the connection (fault injection)."""


def build_jobs_router(ctx: HubContext, runner: JobRunner, faults: FaultInjector) -> APIRouter:
    """Create the router serving the Jobs API.

    Parameters
    ----------
    ctx : HubContext
        Tokens used to authorise callers.
    runner : JobRunner
        Runs and tracks the jobs.
    faults : FaultInjector
        Consulted for log-stream drops.

    Returns
    -------
    APIRouter
        Routes under ``/api/jobs``.
    """
    router = APIRouter()

    def member(request: Request, namespace: str) -> TokenOwner:
        owner = require_owner(ctx, request)
        if namespace not in owner.namespaces():
            raise error(403, f"You don't have access to jobs of namespace {namespace}")
        return owner

    def find(request: Request, namespace: str, job_id: str) -> Job:
        member(request, namespace)
        job = runner.get(namespace, job_id)
        if job is None:
            raise error(404, f"Job {job_id} not found")
        return job

    @router.get("/api/jobs/hardware")
    def hardware() -> JSONResponse:
        return JSONResponse([f.model_dump(by_alias=True) for f in hardware_catalog()])

    @router.post("/api/jobs/{namespace}")
    async def create(namespace: str, request: Request) -> JSONResponse:
        owner = member(request, namespace)
        if owner.role != "write":
            raise error(403, "A write token is required to run jobs")
        try:
            spec = JobSpecRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise error(400, f"Invalid job spec: {exc.errors(include_url=False)}") from exc
        if not spec.command:
            raise error(400, "Invalid job spec: `command` must not be empty")
        if spec.flavor not in flavor_names():
            raise error(400, f"Invalid job spec: unknown flavor `{spec.flavor}`; see GET /api/jobs/hardware")
        if spec.docker_image is None and spec.space_id is None:
            raise error(400, "Invalid job spec: one of `dockerImage` or `spaceId` is required")
        kind = "user" if namespace == owner.user else "org"
        job = runner.submit(namespace, kind, owner, spec)
        return JSONResponse(job.info().model_dump(by_alias=True))

    @router.get("/api/jobs/{namespace}")
    def list_jobs(namespace: str, request: Request) -> JSONResponse:
        member(request, namespace)
        stages = [s.upper() for s in request.query_params.getlist("stage")]
        labels: dict[str, str] = {}
        for item in request.query_params.getlist("label"):
            key, sep, value = item.partition("=")
            if not sep:
                raise error(400, f"Invalid label filter `{item}`: expected `key=value`")
            labels[key] = value
        jobs = [j for j in runner.list(namespace, stages, labels) if runner.listed(j)]
        # Paginated like the Hub's listings: a page, and the next one's URL in a GitHub-style Link header.
        start = int(request.query_params.get("cursor", "0"))
        end = start + runner.page_size
        headers = {}
        if end < len(jobs):
            headers["Link"] = f'<{request.url.include_query_params(cursor=end)}>; rel="next"'
        return JSONResponse([j.info().model_dump(by_alias=True) for j in jobs[start:end]], headers=headers)

    @router.get("/api/jobs/{namespace}/{job_id}")
    def inspect(namespace: str, job_id: str, request: Request) -> JSONResponse:
        return JSONResponse(find(request, namespace, job_id).info().model_dump(by_alias=True))

    @router.post("/api/jobs/{namespace}/{job_id}/cancel")
    def cancel(namespace: str, job_id: str, request: Request) -> Response:
        job = find(request, namespace, job_id)
        if not job.terminal:
            runner.cancel(job)
        return Response(status_code=200)

    @router.post("/api/jobs/{namespace}/{job_id}/duplicate")
    def duplicate(namespace: str, job_id: str, request: Request) -> JSONResponse:
        owner = member(request, namespace)
        job = find(request, namespace, job_id)
        copy = runner.submit(namespace, job.namespace_type, owner, job.spec.model_copy(deep=True))
        return JSONResponse(copy.info().model_dump(by_alias=True))

    @router.put("/api/jobs/{namespace}/{job_id}/labels")
    async def labels(namespace: str, job_id: str, request: Request) -> JSONResponse:
        job = find(request, namespace, job_id)
        body = json.loads(await request.body() or b"{}")
        new = body.get("labels")
        if not isinstance(new, dict) or not all(isinstance(v, str) for v in new.values()):
            raise error(400, "`labels` must be an object of strings")
        job.spec.labels = dict(new)
        return JSONResponse(job.info().model_dump(by_alias=True))

    @router.get("/api/jobs/{namespace}/{job_id}/logs")
    def logs(namespace: str, job_id: str, request: Request) -> StreamingResponse:
        job = find(request, namespace, job_id)
        tail = request.query_params.get("tail")
        start = max(len(job.logs) - int(tail), 0) if tail and tail.isdigit() else 0
        return StreamingResponse(
            _stream_logs(job, start, faults.take_log_fault(job.id)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.get("/api/jobs/{namespace}/{job_id}/metrics")
    def metrics(namespace: str, job_id: str, request: Request) -> Response:
        find(request, namespace, job_id)
        # Like the Hub once a job has ended; the stand-in has no live metrics, the client tolerates 406.
        return Response(status_code=406)

    return router


async def _stream_logs(job: Job, start: int, fault: LogFault | None) -> AsyncIterator[bytes]:
    """Replay the logs from ``start``, follow them live, end once the job has ended and all were sent."""
    drop_after = fault.after_lines if fault else None
    if fault and fault.first_event_delay_s:  # the headers are out; the body's first byte waits
        await asyncio.sleep(fault.first_event_delay_s)
    index = start
    sent = 0
    last_write = time.monotonic()
    while True:
        with job.lock:
            pending = job.logs[index:]
            ended = job.terminal
        for line in pending:
            if drop_after is not None and sent >= drop_after:
                raise LogStreamDropped(f"log stream of {job.id} dropped after {sent} lines (injected fault)")
            yield f"data: {json.dumps({'timestamp': line.timestamp, 'data': line.data})}\n\n".encode()
            index += 1
            sent += 1
            last_write = time.monotonic()
        if ended and not pending:
            return
        if time.monotonic() - last_write >= KEEP_ALIVE_S:
            yield b": keep-alive\n\n"
            last_write = time.monotonic()
        await asyncio.sleep(_POLL_S)
