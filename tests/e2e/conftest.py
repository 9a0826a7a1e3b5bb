"""End-to-end fixtures: the Hub stand-in with a tiny model, and the operator running in-process (KopfRunner)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import KUBECONFIG, ROOT, kubectl, wait_crd_established
from tests.example_data import DATASETS
from tests.hub import DEFAULT_TOKEN, HubServer, client_config, start_hub

TINY_REPO = "tester/tiny-chat"
KUBE_VERSION = "1.36.3"  # what the local control plane runs (the testbin helm would assume v1.20)
ALPACA_REPO = "tester/alpaca"
"""`tests/data/datasets/alpaca.json` as a public Hub dataset: jobs name data the way users do."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama-shaped model the tests build locally (no downloads)."""
    from finetune_training.tiny import build_tiny_model

    cache = ROOT / ".cache" / "tiny-model"
    return build_tiny_model(cache)


@pytest.fixture(scope="session")
def hub(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """The Hub + Jobs stand-in, serving the tiny model as `tester/tiny-chat`; this process talks to it."""
    server = start_hub(tmp_path_factory.mktemp("hub"))
    # Only for the upload: the rest of the session stays offline unless a test points at the stand-in.
    with client_config(server, token=None):
        from huggingface_hub import HfApi

        api = HfApi(endpoint=server.url, token=DEFAULT_TOKEN)
        api.create_repo(TINY_REPO, exist_ok=True, private=False)
        api.upload_folder(repo_id=TINY_REPO, folder_path=str(tiny_model_dir))
        api.create_repo(ALPACA_REPO, repo_type="dataset", exist_ok=True, private=False)
        api.upload_file(
            repo_id=ALPACA_REPO,
            repo_type="dataset",
            path_or_fileobj=str(DATASETS / "alpaca.json"),
            path_in_repo="alpaca.json",
        )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def operator_env(hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The operator's configuration, as the chart would give it (FTJOB_* variables)."""
    env = {
        "FTJOB_ENABLED_BACKENDS": json.dumps(["Kubernetes", "Local", "HFJobs"]),
        "FTJOB_HF_ENDPOINT": hub.url,
        "FTJOB_POLL_INTERVAL_SECONDS": "1",
        # Progress of watched (Kubernetes-backend) runs as often as the tests look, not once a minute.
        "FTJOB_WATCHED_POLL_SECONDS": "1",
        "FTJOB_STATUS_INTERVAL_SECONDS": "0",
        "FTJOB_LOCAL_WORKDIR": str(tmp_path_factory.mktemp("local-backend")),
        # Local-backend jobs may name the test data by path; nothing else on this host.
        "FTJOB_LOCAL_PATH_ROOTS": json.dumps([str(DATASETS)]),
        "FTJOB_METRICS_PORT": str(free_port()),
        # As the chart's `eventsSigningKey` Secret gives it: a restarted operator verifies the same runs.
        "FTJOB_EVENTS_SIGNING_KEY": "e2e-events-signing-key",
        "FTJOB_TRAINER_IMAGE": "ghcr.io/finetune-operator/trainer:test",
        # kwok completes a Job's pod this long after it starts running.
        "FTJOB_POD_ANNOTATIONS": json.dumps({"pod-complete.stage.kwok.x-k8s.io/delay": "4s"}),
    }
    return env


class OperatorHandle:
    """A running operator; `logs()` is everything it logged."""

    def __init__(self, runner: Any, metrics_port: int) -> None:
        self.runner = runner
        self.metrics_port = metrics_port

    def logs(self) -> str:
        """Everything the operator logged; call it after the operator stopped (it waits for that)."""
        return str(self.runner.output or "")


RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


@dataclass
class ChartIdentity:
    """The chart's ServiceAccount and RBAC, applied for one test; the operator runs with its token."""

    release_namespace: str
    service_account: str
    kubeconfig: Path
    manifest: str
    """The applied RBAC objects (YAML), to delete or re-apply."""


def chart_identity(namespace: str, tmp_dir: Path, *, namespaced: bool) -> ChartIdentity:
    """Render the chart, apply its ServiceAccount and RBAC with admin credentials, and write a kubeconfig that
    authenticates as that ServiceAccount: the operator gets exactly the chart's permissions, no more."""
    release_ns = f"{namespace}-op"
    name = f"fto-{namespace}"
    args = ["helm", "template", "e2e", str(ROOT / "charts" / "finetune-operator"), "-n", release_ns]
    args += ["--kube-version", KUBE_VERSION, "--set", f"fullnameOverride={name}"]
    args += ["--set", f"watchNamespaces={{{namespace}}}"] if namespaced else []
    rendered = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] in RBAC_KINDS]
    manifest = yaml.safe_dump_all(docs)
    kubectl("create", "namespace", release_ns)
    kubectl("apply", "-f", "-", input=manifest)
    token = kubectl("create", "token", name, "-n", release_ns, "--duration=2h").stdout.strip()
    admin = yaml.safe_load(KUBECONFIG.read_text())
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": cluster["name"], "user": name}}],
        "current-context": name,
    }
    path = tmp_dir / "operator-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return ChartIdentity(release_ns, f"system:serviceaccount:{release_ns}:{name}", path, manifest)


@pytest.fixture
def chart_rbac(namespace: str, kubeconfig: Path, tmp_path: Path) -> Iterator[ChartIdentity]:
    """The chart's identity for this test: cluster-wide RBAC, or `watchNamespaces` with
    `FTJOB_E2E_RBAC=namespaced`."""
    identity = chart_identity(
        namespace, tmp_path, namespaced=os.environ.get("FTJOB_E2E_RBAC") == "namespaced"
    )
    yield identity
    kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=identity.manifest, check=False)
    kubectl("delete", "namespace", identity.release_namespace, "--wait=false", check=False)


@pytest.fixture
def run_operator(
    kubeconfig: Path, operator_env: dict[str, str], hub: HubServer, namespace: str, chart_rbac: ChartIdentity
) -> Callable[..., Any]:
    """A factory: `with run_operator(**env) as op:` runs kopf in-process for the block, watching only the
    test's namespace (so concurrent test runs on the shared control plane never touch each other's jobs).

    The operator authenticates as the chart's ServiceAccount (see :func:`chart_identity`), in the chart's
    release namespace (POD_NAMESPACE): a call the chart does not permit fails the e2e suite."""
    from kopf.testing import KopfRunner

    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    wait_crd_established("finetunejobs.finetune.dev")

    @contextmanager
    def run(**overrides: str) -> Iterator[OperatorHandle]:
        identity = {"KUBECONFIG": str(chart_rbac.kubeconfig), "POD_NAMESPACE": chart_rbac.release_namespace}
        env = {**operator_env, **identity, **overrides}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        args = ["run", "--standalone", "--namespace", namespace, "-m", "finetune_operator.main", "--verbose"]
        try:
            with client_config(hub, token=None), KopfRunner(args, timeout=60) as runner:
                yield OperatorHandle(runner, int(os.environ["FTJOB_METRICS_PORT"]))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    return run


@pytest.fixture
def token_secret(namespace: str) -> str:
    """A Secret `hf-token` holding the stand-in's token, in the test namespace."""
    kubectl(
        "create", "secret", "generic", "hf-token", "-n", namespace, f"--from-literal=token={DEFAULT_TOKEN}"
    )
    return "hf-token"


@pytest.fixture
def alpaca_dataset() -> dict[str, Any]:
    """Alpaca data (instruction/input/output) on the Hub stand-in, mapped with the Alpaca conversion."""
    return {"name": ALPACA_REPO, "conversion": "Alpaca"}


@pytest.fixture
def pod_runner(kubeconfig: Path, namespace: str, tmp_path: Path) -> Iterator[Any]:
    """Runs the test namespace's training pods as local processes (tests/cluster/podrunner.py):
    `with run_operator(**pod_runner.operator_env):`."""
    from tests.cluster.podrunner import PodRunner

    runner = PodRunner(kubeconfig, namespace, tmp_path).start()
    yield runner
    runner.stop()
    runner.cleanup()


@pytest.fixture(scope="session")
def kueue(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Kueue's controller manager running against the local control plane (tests/cluster/kueue.py)."""
    from tests.cluster.kueue import Kueue

    controller = Kueue(tmp_path_factory.mktemp("kueue"), free_port()).start()
    yield controller
    controller.stop()
