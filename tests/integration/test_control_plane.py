"""The local control plane is real: scheduling on GPU capacity, Jobs completing, RBAC, CRDs and watches."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.conftest import kubectl, wait_crd_established

pytestmark = pytest.mark.cluster

H100 = "NVIDIA-H100-80GB-HBM3"


def _gpu_job(name: str, gpus: int) -> str:
    return json.dumps(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": "1s"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "tolerations": [
                            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                        ],
                        "containers": [
                            {
                                "name": "c",
                                "image": "busybox",
                                "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                            }
                        ],
                    },
                },
            },
        }
    )


def _wait(check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"condition not met within {timeout}s")


def test_four_nodes_ready_with_gpu_capacity_and_labels(kubeconfig: object) -> None:
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    by_name = {n["metadata"]["name"]: n for n in nodes}
    assert set(by_name) == {"gpu-h100-0", "gpu-h100-1", "gpu-a10g-0", "cpu-0"}
    for node in nodes:
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", node["metadata"]["name"]
    for name in ("gpu-h100-0", "gpu-h100-1"):
        assert by_name[name]["status"]["allocatable"]["nvidia.com/gpu"] == "8"
        assert by_name[name]["metadata"]["labels"]["nvidia.com/gpu.product"] == H100
        assert by_name[name]["metadata"]["labels"]["nvidia.com/gpu.memory"] == "81559"
    assert by_name["gpu-a10g-0"]["status"]["allocatable"]["nvidia.com/gpu"] == "1"
    assert by_name["gpu-a10g-0"]["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-A10G"
    assert "nvidia.com/gpu" not in by_name["cpu-0"]["status"]["allocatable"]


def test_gpu_job_is_scheduled_on_a_gpu_node_and_completes(namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=_gpu_job("one-gpu", 1))
    kubectl("wait", "-n", namespace, "--for=condition=Complete", "job/one-gpu", "--timeout=90s")
    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-l", "job-name=one-gpu", "-o", "json").stdout)
    node = pods["items"][0]["spec"]["nodeName"]
    assert node.startswith("gpu-"), node


def test_job_asking_for_more_gpus_than_any_node_stays_pending(namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=_gpu_job("nine-gpus", 9))

    def failed_scheduling() -> bool:
        events = kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        return any(e["reason"] == "FailedScheduling" for e in json.loads(events)["items"])

    _wait(failed_scheduling)
    pods = json.loads(
        kubectl("get", "pods", "-n", namespace, "-l", "job-name=nine-gpus", "-o", "json").stdout
    )
    assert [p["status"]["phase"] for p in pods["items"]] == ["Pending"]
    assert not pods["items"][0]["spec"].get("nodeName")


def test_rbac_is_enforced_for_a_service_account_without_rights(namespace: str) -> None:
    kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    who = f"system:serviceaccount:{namespace}:nobody"
    denied = kubectl("get", "pods", "-n", namespace, "--as", who, check=False)
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr or "forbidden" in denied.stderr
    assert (
        kubectl("auth", "can-i", "list", "pods", "-n", namespace, "--as", who, check=False).stdout.strip()
        == "no"
    )
    kubectl("create", "role", "pod-reader", "--verb=list", "--resource=pods", "-n", namespace)
    kubectl("create", "rolebinding", "nobody-reads", "--role=pod-reader", f"--serviceaccount={namespace}:nobody",
            "-n", namespace)  # fmt: skip
    _wait(lambda: kubectl("get", "pods", "-n", namespace, "--as", who, check=False).returncode == 0)


def test_a_crd_can_be_installed_and_its_objects_created_and_watched(namespace: str, api_client: Any) -> None:
    from kubernetes import client, watch

    group = f"{namespace}.example.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(crd))
    try:
        wait_crd_established(f"widgets.{group}")
        custom = client.CustomObjectsApi(api_client)
        obj = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "size": 3}
        _wait(lambda: _try_create(custom, group, namespace, obj), timeout=30)
        stream = watch.Watch().stream(
            custom.list_namespaced_custom_object, group, "v1", namespace, "widgets", timeout_seconds=10
        )
        first = next(iter(stream))
        assert first["type"] == "ADDED"
        assert first["object"]["size"] == 3
    finally:
        kubectl("delete", "crd", f"widgets.{group}", "--wait=false", check=False)


def _try_create(custom: Any, group: str, namespace: str, obj: dict[str, Any]) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", obj)
    except ApiException as exc:
        if exc.status == 404:  # discovery not caught up yet
            return False
        raise
    return True
