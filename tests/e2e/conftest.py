"""End-to-end fixtures: the Hub stand-in with a tiny model, and the operator running in-process (KopfRunner)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, kubectl
from tests.example_data import DATASETS
from tests.hub import DEFAULT_TOKEN, HubServer, client_config, start_hub

TINY_REPO = "tester/tiny-chat"
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


@pytest.fixture
def run_operator(
    kubeconfig: Path, operator_env: dict[str, str], hub: HubServer, namespace: str
) -> Callable[..., Any]:
    """A factory: `with run_operator(**env) as op:` runs kopf in-process for the block, watching only the
    test's namespace (so concurrent test runs on the shared control plane never touch each other's jobs)."""
    from kopf.testing import KopfRunner

    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "crd/finetunejobs.finetune.dev", "--timeout=60s")

    @contextmanager
    def run(**overrides: str) -> Iterator[OperatorHandle]:
        env = {**operator_env, **overrides}
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
