"""Session-wide test set-up: offline Hugging Face libraries and the local Kubernetes control plane."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KUBECONFIG = ROOT / ".cluster" / "kubeconfig"
TESTBIN = ROOT / ".testbin" / "bin"

# Nothing in the tests may reach a hub: the libraries stay offline, except where a test points
# HF_ENDPOINT at the local stand-in.
os.environ.update(
    HF_HUB_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    HF_HUB_DISABLE_TELEMETRY="1",
    HF_HUB_DISABLE_XET="1",
    TOKENIZERS_PARALLELISM="false",
    DO_NOT_TRACK="1",
)
os.environ["PATH"] = f"{TESTBIN}{os.pathsep}{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"


def _cluster_healthy() -> bool:
    if not KUBECONFIG.exists():
        return False
    probe = ["kubectl", "--kubeconfig", str(KUBECONFIG), "get", "--raw", "/readyz"]
    return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[Path]:
    """The local control plane's kubeconfig, starting the cluster when none runs (and stopping it after)."""
    started = False
    if not _cluster_healthy():
        subprocess.run([str(ROOT / "tests" / "cluster" / "cluster.sh"), "up"], check=True, timeout=600)
        started = True
    os.environ["KUBECONFIG"] = str(KUBECONFIG)
    yield KUBECONFIG
    if started and not os.environ.get("FTJOB_KEEP_CLUSTER"):
        subprocess.run([str(ROOT / "tests" / "cluster" / "cluster.sh"), "down"], check=False, timeout=300)


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[object]:
    """A kubernetes ApiClient for the local control plane."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="session")
def core_v1(api_client: object) -> object:
    """CoreV1Api on the local control plane."""
    from kubernetes import client

    return client.CoreV1Api(api_client)


@pytest.fixture
def namespace(core_v1: object) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:8]}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))  # type: ignore[attr-defined]
    yield name
    # With no operator left to run the finalizer, FineTuneJobs would hold the namespace forever.
    listed = kubectl("get", "ftj", "-n", name, "-o", "name", check=False)
    for ftj in listed.stdout.split() if listed.returncode == 0 else []:
        kubectl(
            "patch", ftj, "-n", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False
        )
    core_v1.delete_namespace(name, propagation_policy="Background")  # type: ignore[attr-defined]


def wait_crd_established(crd: str, timeout: float = 60.0) -> None:
    """Until the API server serves the CRD. (`kubectl wait --for=condition=Established` fails at once on a CRD
    whose status is not written yet, as right after creating it on a fresh control plane.)"""
    deadline = time.monotonic() + timeout
    jsonpath = '{.status.conditions[?(@.type=="Established")].status}'
    while time.monotonic() < deadline:
        got = kubectl("get", "crd", crd, "-o", f"jsonpath={jsonpath}", check=False)
        if got.returncode == 0 and got.stdout.strip() == "True":
            return
        time.sleep(0.5)
    raise RuntimeError(f"CRD {crd} was not Established in {timeout:.0f}s")


def kubectl(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the project's kubectl against the local control plane."""
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(KUBECONFIG), *args],
        input=input,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )
