"""Kueue on the local control plane: the real controller (built by testbin.sh at the pinned version), its CRDs
from the same module, run as a local process the way its Deployment runs it, with admin credentials.

What differs from a Helm install of Kueue, and why it does not change what the tests see:
- its admission webhooks are not registered with the API server (they default and validate Kueue's own
  objects, which the tests create complete; a Job is suspended by the operator, not by Kueue's webhook);
- certificates are self-signed files (its metrics server insists on them, at the fixed path
  `/etc/kueue/metrics/certs` when Kueue does not manage its own), and the visibility API server is off;
- only the `batch/job` integration is on, and Kueue manages only Jobs that carry its queue-name label,
  so the rest of the suite's Jobs are untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT, TESTBIN, kubectl, wait_crd_established

METRICS_CERTS = Path("/etc/kueue/metrics/certs")
CRD_NAMES = ("workloads", "clusterqueues", "localqueues", "resourceflavors")


def _version() -> str:
    for line in (ROOT / "tests" / "cluster" / "versions.env").read_text().splitlines():
        if line.startswith("KUEUE_VERSION="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError("KUEUE_VERSION is not pinned in tests/cluster/versions.env")


def crd_dir() -> Path:
    """The Kueue module's own CRDs (downloaded with the module by testbin.sh; cached by Go)."""
    env = {**os.environ, "GOFLAGS": ""}
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kueue@{_version()}"],
        capture_output=True, text=True, check=True, env=env, timeout=600,
    ).stdout  # fmt: skip
    return Path(json.loads(out)["Dir"]) / "config" / "components" / "crd" / "bases"


def _self_signed(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "tls.crt").exists() and (directory / "tls.key").exists():
        return
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=kueue",
         "-keyout", str(directory / "tls.key"), "-out", str(directory / "tls.crt")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


CONFIG = """\
apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: kueue-system
health:
  healthProbeBindAddress: "0"
metrics:
  bindAddress: "0"
webhook:
  host: 127.0.0.1
  port: {port}
  certDir: {certs}
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
integrations:
  frameworks: ["batch/job"]
"""


class Kueue:
    """A running Kueue controller manager; `stop()` ends it."""

    def __init__(self, workdir: Path, webhook_port: int) -> None:
        self.workdir = workdir
        self.webhook_port = webhook_port
        self.log = workdir / "kueue.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Kueue:
        binary = TESTBIN / "kueue"
        if not binary.exists():
            raise RuntimeError(f"{binary} is missing: run `make testbin`")
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd_dir()))
        for name in CRD_NAMES:
            wait_crd_established(f"{name}.kueue.x-k8s.io")
        kubectl("create", "namespace", "kueue-system", check=False)
        certs = self.workdir / "certs"
        _self_signed(certs)
        _self_signed(METRICS_CERTS)
        config = self.workdir / "config.yaml"
        config.write_text(CONFIG.format(port=self.webhook_port, certs=certs))
        self.proc = subprocess.Popen(
            [str(binary), "--config", str(config), "--feature-gates=VisibilityOnDemand=false"],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
        self._wait_started()
        return self

    def _wait_started(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"Kueue exited ({self.proc.returncode}): {self.log.read_text()[-3000:]}")
            if '"Starting workers"' in self.log.read_text(errors="replace"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"Kueue did not start in {timeout:.0f}s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
