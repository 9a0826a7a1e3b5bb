"""From `helm install` to a FineTuneJob `Succeeded`, with nothing started by hand.

The chart's own operator Deployment runs as a real pod would: the pod runner (tests/cluster/podrunner.py)
plays its kubelet, so the operator process gets the pod's environment, its mounted ConfigMap and Secrets,
and a bound token of the chart's ServiceAccount at the in-cluster path. The process has no kubeconfig:
it reaches the apiserver only through the client library's in-cluster configuration, with the chart's
RBAC. Its training pod is run the same way.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.podrunner import RUNNER_ANNOTATION, PodRunner, can_bind_mount
from tests.conftest import ROOT, kubectl
from tests.e2e.conftest import free_port
from tests.e2e.support import apply, phase_is, wait_for
from tests.e2e.test_kubernetes_pods import pod_job
from tests.hub import HubServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.hub,
    pytest.mark.skipif(
        not can_bind_mount(),
        reason="the pod runner needs a private mount namespace (root, `unshare -m`) for the in-cluster token",
    ),
]

CHART = ROOT / "charts" / "finetune-operator"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["helm", *args], capture_output=True, text=True, check=True, timeout=180)


def chart_values(namespace: str, hub: HubServer) -> dict[str, Any]:
    """What a platform team would set: its Hub endpoint, the one backend it runs, its trainer image.
    The runner annotation marks the pods the test harness runs (the operator's and its training pods)."""
    run_here = {RUNNER_ANNOTATION: "true"}
    return {
        "fullnameOverride": f"fto-{namespace}",
        "image": {"tag": "test"},
        "watchNamespaces": [namespace],
        "podAnnotations": run_here,
        "liveness": {"port": free_port()},
        "metrics": {"port": free_port()},
        "config": {
            "hf_endpoint": hub.url,
            "enabled_backends": ["Kubernetes"],
            "trainer_image": "ghcr.io/finetune-operator/trainer:test",
            "pod_annotations": run_here,
            "poll_interval_seconds": 1,
            "watched_poll_seconds": 1,
            "status_interval_seconds": 1,
        },
    }


def test_helm_install_then_a_finetunejob_succeeds_with_the_charts_own_identity(
    namespace: str,
    hub: HubServer,
    pod_runner: PodRunner,
    kubeconfig: Path,
    token_secret: str,
    alpaca_dataset: dict[str, Any],
    tmp_path: Path,
) -> None:
    release_ns = f"{namespace}-helm"
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(chart_values(namespace, hub)))
    helm("install", "e2e", str(CHART), "-n", release_ns, "--create-namespace", "-f", str(values))
    (tmp_path / "operator-pod").mkdir()
    operator_pods = PodRunner(kubeconfig, release_ns, tmp_path / "operator-pod").start()
    try:
        deadline = time.monotonic() + 120
        while not operator_pods.runs and time.monotonic() < deadline:
            time.sleep(0.5)
        assert operator_pods.runs, kubectl("get", "pods", "-n", release_ns, "-o", "wide").stdout
        (operator,) = operator_pods.runs.values()
        repo = f"tester/{namespace}-helm"
        apply(namespace, pod_job("helm-sft", alpaca_dataset, token_secret, output={"repo": repo}))
        obj = wait_for(namespace, "helm-sft", phase_is("Succeeded", "Failed"), timeout=600)
        log = kubectl("logs", "-n", release_ns, operator.pod).stdout
        assert obj["status"]["phase"] == "Succeeded", json.dumps(obj["status"], indent=1) + log[-4000:]
        assert obj["status"]["outputs"]["model"].endswith(repo)
        assert any(f.endswith(".safetensors") for f in hub.store.list_files("model", repo))
        # Every call the operator made was allowed by the chart's RBAC.
        assert "403" not in log and "Forbidden" not in log, log[-4000:]
        (training,) = pod_runner.runs.values()
        assert training.proc.returncode == 0
        # `helm uninstall` deletes the pod; the operator stops on SIGTERM as in a real cluster.
        helm("uninstall", "e2e", "-n", release_ns, "--wait", "--timeout", "120s")
        assert operator.proc.wait(timeout=90) == 0
    finally:
        operator_pods.stop()
        operator_pods.cleanup()
        subprocess.run(["helm", "uninstall", "e2e", "-n", release_ns], capture_output=True, check=False)
        kubectl("delete", "namespace", release_ns, "--wait=false", check=False)
