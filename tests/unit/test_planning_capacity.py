"""Cluster GPU capacity from kopf's indexes (fed by watch events) plans exactly as a fresh listing would.

The index functions are driven the way kopf drives them: each watch event of a node or pod replaces what
that object contributes, a result of `{}` (no GPUs, finished, unbound) removes it, and a deletion drops it.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import kopf
import yaml

from finetune_operator.config import OperatorConfig
from finetune_operator.handlers.indexes import gpu_capacity, gpu_nodes, gpu_pods
from finetune_operator.planner_service import PlannerService
from finetune_operator.planning import offers_from_objects
from finetune_operator.planning.cluster import offers_from_nodes

NODES_YAML = Path(__file__).resolve().parents[1] / "cluster" / "nodes.yaml"


def fake_nodes() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(NODES_YAML.read_text()) if doc and doc.get("kind") == "Node"]


def pod(name: str, node: str | None, gpus: int, phase: str = "Running", *, init_gpus: int = 0) -> dict:
    spec: dict[str, Any] = {
        "containers": [
            {"name": "main", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}}
        ]
    }
    if node:
        spec["nodeName"] = node
    if init_gpus:
        spec["initContainers"] = [
            {"name": "i", "resources": {"requests": {"nvidia.com/gpu": str(init_gpus)}}}
        ]
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": name},
        "spec": spec,
        "status": {"phase": phase},
    }


class FakeIndex:
    """kopf's index semantics: per object, its latest result replaces what it contributed before."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.by_object: dict[str, dict[str, Any]] = {}

    def event(self, obj: dict[str, Any], deleted: bool = False) -> None:
        uid = obj["metadata"].get("uid") or obj["metadata"]["name"]
        if deleted:
            self.by_object.pop(uid, None)
        else:
            self.by_object[uid] = asyncio.run(self.fn(body=kopf.Body(copy.deepcopy(obj))))

    @property
    def index(self) -> dict[str, list[Any]]:
        index: dict[str, list[Any]] = {}
        for contribution in self.by_object.values():
            for key, value in contribution.items():
                index.setdefault(key, []).append(value)
        return index


def plans_match(nodes: list[dict[str, Any]], pods: list[dict[str, Any]], cfg: OperatorConfig) -> list[Any]:
    node_index, pod_index = FakeIndex(gpu_nodes), FakeIndex(gpu_pods)
    for node in nodes:
        node_index.event(node)
    for p in pods:
        pod_index.event(p)
    listed, busy = gpu_capacity(node_index.index, pod_index.index)
    from_index = offers_from_nodes(
        listed, busy, cfg.gpu_prices, tolerations=cfg.tolerations, node_selector=cfg.node_selector
    )
    from_listing = offers_from_objects(
        nodes, pods, cfg.gpu_prices, tolerations=cfg.tolerations, node_selector=cfg.node_selector
    )
    assert from_index == from_listing
    return from_index


def test_indexed_capacity_equals_a_listing() -> None:
    cfg = OperatorConfig(gpu_prices=[{"product": "H100", "usdPerGPUHour": 2.5}])
    nodes = fake_nodes()
    nodes[1]["spec"]["unschedulable"] = True
    pods = [
        pod("a", "gpu-h100-0", 6),
        pod("b", "gpu-h100-0", 2, "Succeeded"),  # finished: holds nothing
        pod("c", "gpu-a10g-0", 0, init_gpus=1),  # the init container's GPU counts
        pod("d", None, 8, "Pending"),  # not bound yet
        pod("e", "cpu-0", 0),
    ]
    offers = {o.node: o for o in plans_match(nodes, pods, cfg)}
    assert (offers["gpu-h100-0"].free, offers["gpu-a10g-0"].free) == (2, 0)
    assert not offers["gpu-h100-1"].schedulable and offers["gpu-h100-0"].usd_per_gpu_hour == 2.5


def test_only_gpu_nodes_and_pods_holding_gpus_are_kept() -> None:
    node_index, pod_index = FakeIndex(gpu_nodes), FakeIndex(gpu_pods)
    for node in fake_nodes():
        node_index.event(node)
    assert set(node_index.index) == {"gpu-h100-0", "gpu-h100-1", "gpu-a10g-0"}  # the CPU node: nothing
    kept = node_index.index["gpu-h100-0"][0]
    assert set(kept) == {"metadata", "spec", "status"} and "images" not in kept["status"]
    for p in (pod("a", "cpu-0", 0), pod("b", None, 1, "Pending"), pod("c", "gpu-h100-0", 3)):
        pod_index.event(p)
    assert pod_index.index == {"gpu-h100-0": [3]}


def test_the_index_follows_pods_as_they_bind_finish_and_go() -> None:
    node_index, pod_index = FakeIndex(gpu_nodes), FakeIndex(gpu_pods)
    for node in fake_nodes():
        node_index.event(node)

    def free() -> int:
        listed, busy = gpu_capacity(node_index.index, pod_index.index)
        return {o.node: o.free for o in offers_from_nodes(listed, busy)}["gpu-h100-0"]

    assert free() == 8
    training = pod("t", None, 4, "Pending")
    pod_index.event(training)
    assert free() == 8  # not bound yet
    training["spec"]["nodeName"] = "gpu-h100-0"
    pod_index.event(training)
    assert free() == 4
    training["status"]["phase"] = "Succeeded"
    pod_index.event(training)
    assert free() == 8
    other = pod("o", "gpu-h100-0", 2)
    pod_index.event(other)
    assert free() == 6
    pod_index.event(other, deleted=True)
    assert free() == 8
    # A node cordoned by a later event stops offering free GPUs.
    cordoned = fake_nodes()[0]
    cordoned["spec"]["unschedulable"] = True
    node_index.event(cordoned)
    assert free() == 0


class NoListing:
    def list_nodes_and_pods(self) -> Any:
        raise AssertionError("planning listed the cluster instead of reading the indexes")


def test_the_planner_reads_the_indexes_not_a_listing() -> None:
    node_index, pod_index = FakeIndex(gpu_nodes), FakeIndex(gpu_pods)
    for node in fake_nodes():
        node_index.event(node)
    pod_index.event(pod("a", "gpu-a10g-0", 1))
    cfg = OperatorConfig(enabled_backends=["Kubernetes"], metrics_port=0)
    service = PlannerService(
        cfg,
        NoListing(),  # type: ignore[arg-type]
        lambda: gpu_capacity(node_index.index, pod_index.index),
    )
    offers = {o.node: o.free for o in service.cluster_offers()}
    assert offers == {"gpu-h100-0": 8, "gpu-h100-1": 8, "gpu-a10g-0": 0}


def test_without_indexes_the_planner_lists() -> None:
    class Listing:
        calls = 0

        def list_nodes_and_pods(self) -> Any:
            Listing.calls += 1
            return fake_nodes(), []

    cfg = OperatorConfig(enabled_backends=["Kubernetes"], metrics_port=0)
    assert len(PlannerService(cfg, Listing()).cluster_offers()) == 3  # type: ignore[arg-type]
    assert Listing.calls == 1
