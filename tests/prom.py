"""A real Prometheus server on loopback for tests: scrapes given targets, answers PromQL over HTTP.

Needs the `prometheus` binary (Debian: `apt-get install prometheus`). Nothing leaves the machine: the
server binds 127.0.0.1, keeps its TSDB in the test's tmp folder and has no remote read/write.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusError(RuntimeError):
    """Prometheus did not start, or a query failed."""


class PrometheusServer:
    """A running `prometheus` process; see :func:`start_prometheus`."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        """Base URL, `http://127.0.0.1:PORT`."""
        self.log = log

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise PrometheusError(f"{path}: HTTP {exc.code}: {exc.read().decode(errors='replace')}") from exc

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Evaluate an instant query; the `data.result` list (each `{"metric": {...}, "value": [t, "v"]}`)."""
        body = self._get("/api/v1/query", {"query": promql})
        if body.get("status") != "success":
            raise PrometheusError(f"query {promql!r} failed: {body}")
        return list(body["data"]["result"])

    def wait_for(self, promql: str, timeout: float = 60.0, interval: float = 0.5) -> list[dict[str, Any]]:
        """Poll `promql` until it returns a non-empty result; PrometheusError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(
                    f"no result for {promql!r} within {timeout}s; targets: {self.targets()}"
                )
            time.sleep(interval)

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets with their health and last error."""
        body = self._get("/api/v1/targets")
        return [
            {k: t.get(k) for k in ("scrapeUrl", "health", "lastError")} for t in body["data"]["activeTargets"]
        ]

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_prometheus(
    targets: list[str], tmp_path: Path, scrape_interval: str = "1s", startup_timeout: float = 60.0
) -> PrometheusServer:
    """Start Prometheus scraping `targets` (`host:port`, path `/metrics`) and wait until it is ready.

    Parameters
    ----------
    targets
        Scrape targets, e.g. ``["127.0.0.1:9464"]``.
    tmp_path
        Folder for the config, the TSDB and the server's log.
    scrape_interval
        Scrape (and evaluation) interval; the scrape timeout equals it.
    startup_timeout
        Seconds to wait for `/-/ready`.

    Returns
    -------
    PrometheusServer
        The running server; call ``stop()`` (or use it as a context manager).
    """
    binary = shutil.which("prometheus")
    if binary is None:
        raise PrometheusError("the `prometheus` binary is not on PATH (Debian: apt-get install prometheus)")
    root = Path(tmp_path) / "prometheus"
    (root / "data").mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": "finetune-operator",
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "static_configs": [{"targets": targets}],
            }
        ],
    }
    config_file = root / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = root / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + startup_timeout
    while True:
        if process.poll() is not None:
            raise PrometheusError(f"prometheus exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # still starting
        if time.monotonic() > deadline:
            server.stop()
            raise PrometheusError(f"prometheus not ready after {startup_timeout}s: {log.read_text()[-2000:]}")
        time.sleep(0.2)
