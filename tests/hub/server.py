"""The stand-in server: FastAPI app assembly and a uvicorn instance on a background thread."""

from __future__ import annotations

import logging
import socket
import tempfile
import threading
from email.utils import formatdate
from pathlib import Path
from types import TracebackType

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.hub.auth import TokenRegistry
from tests.hub.cdn import build_cdn_router
from tests.hub.faults import FaultInjector, FaultMiddleware
from tests.hub.hub_routes import HubContext, build_hub_router, error_response
from tests.hub.jobs import JobRunner
from tests.hub.jobs_routes import LogStreamDropped, build_jobs_router
from tests.hub.store import LFS_SIZE_THRESHOLD, RepoStore, StoreError

_log = logging.getLogger(__name__)


class DateHeaderMiddleware:
    """Stamp every response with the current ``Date``.

    uvicorn's own Date header is refreshed once a second and can lag by more than a second; the client stops a
    non-follow log replay at events later than ``Date + 1 s``, so a stale Date would cut fresh lines.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_date(message: Message) -> None:
            if message["type"] == "http.response.start":
                date = formatdate(usegmt=True).encode()
                message["headers"] = [*message.get("headers", []), (b"date", date)]
            await send(message)

        await self.app(scope, receive, send_with_date)


def build_app(ctx: HubContext, runner: JobRunner, faults: FaultInjector) -> FastAPI:
    """Assemble the app: Jobs routes first (``/api/jobs/hardware`` before ``/api/jobs/{ns}``), then Hub.

    Parameters
    ----------
    ctx : HubContext
        Store and tokens.
    runner : JobRunner
        Job runner.
    faults : FaultInjector
        Fault rules applied by middleware.

    Returns
    -------
    FastAPI
        The ASGI app.
    """
    app = FastAPI(title="Hugging Face Hub stand-in", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(build_cdn_router(ctx.store, ctx.cdn_secret))
    app.include_router(build_jobs_router(ctx, runner, faults))
    app.include_router(build_hub_router(ctx))

    @app.exception_handler(StoreError)
    async def _store_error(_: Request, exc: StoreError) -> JSONResponse:
        return error_response(exc)

    app.add_middleware(FaultMiddleware, faults=faults)
    app.add_middleware(DateHeaderMiddleware)
    return app


class HubServer:
    """A running Hub + Jobs stand-in on ``127.0.0.1``.

    Parameters
    ----------
    data_dir : Path, optional
        On-disk store; a temporary directory (removed on :meth:`stop`) when omitted.
    host : str
        Interface to bind.
    port : int
        Port to bind; ``0`` picks a free one.
    token : str, optional
        An extra valid token for user ``tester`` besides :data:`tests.hub.auth.DEFAULT_TOKEN`.
    lfs_threshold : int
        Size from which files go through LFS.
    job_start_delay_s : float
        Seconds each job stays in SCHEDULING before it runs.
    cdn_host : str, optional
        Host name under which `/resolve/` redirects LFS files to the CDN (this server); None serves them directly.

    Attributes
    ----------
    url : str
        Base URL, to use as ``HF_ENDPOINT``.
    data_dir : Path
        Root of the store.
    store : RepoStore
        The repositories, readable by tests (``read_file``, ``list_files``, ``commits``).
    tokens : TokenRegistry
        Valid tokens; add or remove while running.
    faults : FaultInjector
        Fault rules; add while running.
    jobs : JobRunner
        The job runner (``jobs.get(namespace, id)`` exposes live state and logs).
    context : HubContext
        What the Hub routes share; ``context.tree_page_size`` and ``context.cdn_host`` may be changed while running.
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        lfs_threshold: int = LFS_SIZE_THRESHOLD,
        job_start_delay_s: float = 0.0,
        cdn_host: str | None = "localhost",
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="hub-standin-") if data_dir is None else None
        self.data_dir = Path(self._tmp.name if self._tmp else data_dir)  # type: ignore[arg-type]
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.store = RepoStore(self.data_dir, lfs_threshold=lfs_threshold)
        self.tokens = TokenRegistry.with_default(token)
        self.faults = FaultInjector()
        self.jobs = JobRunner(self.data_dir, hub_url=lambda: self.url, start_delay_s=job_start_delay_s)
        self.context = HubContext(self.store, self.tokens, cdn_host=cdn_host)
        self.app = build_app(self.context, self.jobs, self.faults)
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", date_header=False
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self) -> HubServer:
        """Serve on a background thread; return once the server accepts connections."""
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="hub-standin", daemon=True
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the Hub stand-in failed to start on {self.url}")
            self._thread.join(0.02)
        return self

    def serve_forever(self) -> None:
        """Serve on the calling thread until interrupted (used by the CLI)."""
        self._server.run(sockets=[self._sock])
        self.jobs.shutdown()

    def stop(self) -> None:
        """Cancel running jobs, stop the server, remove a temporary data dir."""
        self.jobs.shutdown()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> HubServer:
        return self.start() if self._thread is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_hub(data_dir: Path | str | None = None, **kwargs: object) -> HubServer:
    """Start a stand-in and return it (also usable as ``with start_hub() as hub:``).

    Parameters
    ----------
    data_dir : Path or str, optional
        On-disk store; temporary when omitted.
    **kwargs
        Passed to :class:`HubServer` (``token``, ``port``, ``lfs_threshold``, ``job_start_delay_s``).

    Returns
    -------
    HubServer
        The running server.
    """
    return HubServer(data_dir, **kwargs).start()  # type: ignore[arg-type]


__all__ = ["HubServer", "LogStreamDropped", "build_app", "start_hub"]
