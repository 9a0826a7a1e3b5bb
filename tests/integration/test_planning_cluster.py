"""In-cluster GPU discovery on the local control plane's fake GPU nodes (tests/cluster/nodes.yaml).

The dict tests feed the pure function the very Node objects the control plane is given; the `cluster`
tests list them back from the real API server through the operator's own `KubeGateway`.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from finetune_operator.api.spec import Backend, FineTuneJobSpec
from finetune_operator.cluster.gateway import KubeGateway
from finetune_operator.planning import (
    ClusterGpuOffer,
    GpuPrice,
    PlanDecision,
    PlannerConfig,
    default_catalog,
    make_plan,
    model_info_from_parameters,
    offers_from_objects,
)

NODES_YAML = Path(__file__).resolve().parents[1] / "cluster" / "nodes.yaml"
H100 = "NVIDIA-H100-80GB-HBM3"


def fake_nodes() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(NODES_YAML.read_text()) if doc and doc.get("kind") == "Node"]


def pod(
    node: str | None, gpus: int, phase: str = "Running", *, init_gpus: int = 0, requests: bool = False
) -> dict:
    resources = {"requests" if requests else "limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    spec: dict[str, Any] = {"containers": [{"name": "main", "resources": resources}]}
    if node:
        spec["nodeName"] = node
    if init_gpus:
        spec["initContainers"] = [
            {"name": "init", "resources": {"limits": {"nvidia.com/gpu": str(init_gpus)}}}
        ]
    return {"metadata": {"name": uuid.uuid4().hex[:8]}, "spec": spec, "status": {"phase": phase}}


def by_node(offers: list[ClusterGpuOffer]) -> dict[str, ClusterGpuOffer]:
    return {o.node: o for o in offers}


def test_idle_fake_nodes() -> None:
    offers = by_node(offers_from_objects(fake_nodes(), []))
    assert set(offers) == {"gpu-h100-0", "gpu-h100-1", "gpu-a10g-0"}  # the CPU node offers no GPU
    h100 = offers["gpu-h100-0"]
    assert (h100.product, h100.gpu_type, h100.capacity, h100.free) == (H100, "H100", 8, 8)
    assert h100.memory_gib == pytest.approx(81559 / 1024, abs=0.01)
    a10g = offers["gpu-a10g-0"]
    assert (a10g.gpu_type, a10g.free, a10g.memory_gib) == ("A10G", 1, pytest.approx(23028 / 1024, abs=0.01))


def test_busy_gpus_are_subtracted() -> None:
    pods = [
        pod("gpu-h100-0", 6),
        pod("gpu-h100-0", 2, "Succeeded"),  # finished: frees its GPUs
        pod("gpu-h100-1", 1, requests=True),
        pod("gpu-h100-1", 1, init_gpus=4),  # init container's 4 dominate
        pod(None, 8, "Pending"),  # not bound yet: holds nothing
        pod("gpu-a10g-0", 1),
        pod("cpu-0", 0),
    ]
    offers = by_node(offers_from_objects(fake_nodes(), pods))
    assert (offers["gpu-h100-0"].requested, offers["gpu-h100-0"].free) == (6, 2)
    assert (offers["gpu-h100-1"].requested, offers["gpu-h100-1"].free) == (5, 3)
    assert offers["gpu-a10g-0"].free == 0


def test_cordoned_node_offers_nothing_free() -> None:
    nodes = fake_nodes()
    nodes[0]["spec"]["unschedulable"] = True
    offers = by_node(offers_from_objects(nodes, []))
    assert offers["gpu-h100-0"].free == 0 and not offers["gpu-h100-0"].schedulable


def test_only_nodes_training_pods_may_land_on_are_offers() -> None:
    """Untolerated NoSchedule/NoExecute taints and a missed node selector take a node out entirely."""
    from finetune_operator.config import OperatorConfig

    default = OperatorConfig().tolerations  # what the Kubernetes backend puts on training pods
    nodes = fake_nodes()
    assert set(by_node(offers_from_objects(nodes, [], tolerations=default))) == {
        "gpu-h100-0",
        "gpu-h100-1",
        "gpu-a10g-0",
    }  # fmt: skip  (the GPU nodes' nvidia.com/gpu taint is tolerated)
    nodes[0]["spec"].setdefault("taints", []).append(
        {"key": "dedicated", "value": "research", "effect": "NoSchedule"}
    )
    nodes[1]["spec"].setdefault("taints", []).append({"key": "maintenance", "effect": "PreferNoSchedule"})
    offers = by_node(offers_from_objects(nodes, [], tolerations=default))
    assert "gpu-h100-0" not in offers and "gpu-h100-1" in offers  # a preference does not block
    research = [*default, {"key": "dedicated", "operator": "Equal", "value": "research"}]
    assert "gpu-h100-0" in by_node(offers_from_objects(nodes, [], tolerations=research))
    wrong_value = [*default, {"key": "dedicated", "value": "prod", "effect": "NoSchedule"}]
    assert "gpu-h100-0" not in by_node(offers_from_objects(nodes, [], tolerations=wrong_value))
    assert "gpu-h100-0" in by_node(offers_from_objects(nodes, [], tolerations=[{"operator": "Exists"}]))
    # Without the default toleration the GPU nodes' own taint keeps every GPU node out.
    assert offers_from_objects(fake_nodes(), [], tolerations=[]) == []
    # The operator's extra node selector.
    nodes = fake_nodes()
    nodes[2]["metadata"]["labels"]["pool"] = "training"
    selected = by_node(
        offers_from_objects(nodes, [], tolerations=default, node_selector={"pool": "training"})
    )
    assert set(selected) == {nodes[2]["metadata"]["name"]}


def test_prices_by_product_or_type() -> None:
    prices = [
        GpuPrice(product="H100", usd_per_gpu_hour=2.0),
        GpuPrice(product="NVIDIA-A10G", usd_per_gpu_hour=0.5),
    ]
    offers = by_node(offers_from_objects(fake_nodes(), [], prices))
    assert offers["gpu-h100-1"].usd_per_gpu_hour == 2.0 and offers["gpu-a10g-0"].usd_per_gpu_hour == 0.5


def _plan(offers: list[ClusterGpuOffer], size: float, **fields: Any) -> PlanDecision:
    body = {"model": {"name": "org/m"}, "dataset": {"name": "org/d"}, "method": "SFT"} | fields
    return make_plan(
        FineTuneJobSpec.model_validate(body),
        model=model_info_from_parameters(size),
        dataset_rows=5000,
        mean_tokens=300,
        catalog=default_catalog(),
        cluster_offers=offers,
        config=PlannerConfig(),
    )


def test_planning_on_fake_nodes_idle_and_busy() -> None:
    idle = offers_from_objects(fake_nodes(), [])
    small = _plan(idle, 0.5e9)
    assert small.backend == Backend.KUBERNETES and small.estimated_cost_usd == 0
    # 13B full fine-tuning needs FSDP over several H100s of one node.
    big = _plan(idle, 13e9, peft="None")
    assert big.backend == Backend.KUBERNETES and big.gpu_product == H100 and big.gpu_count > 1
    # Every GPU busy: Auto goes to HF Jobs, an explicit Kubernetes job queues.
    busy = offers_from_objects(
        fake_nodes(), [pod("gpu-h100-0", 8), pod("gpu-h100-1", 8), pod("gpu-a10g-0", 1)]
    )
    assert _plan(busy, 0.5e9).backend == Backend.HF_JOBS
    queued = _plan(busy, 0.5e9, backend="Kubernetes")
    assert queued.backend == Backend.KUBERNETES and "queue" in queued.reason
    # 13B full needs more GPUs than any node has free now, so Auto takes an HF Jobs flavor.
    partly = offers_from_objects(fake_nodes(), [pod("gpu-h100-0", 7), pod("gpu-h100-1", 7)])
    assert _plan(partly, 13e9, peft="None").backend == Backend.HF_JOBS


# ---- the real control plane ------------------------------------------------------------------------------


def _gpu_pod_manifest(name: str, node: str, gpus: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [
                {"name": "main", "image": "busybox", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
            ],
        },
    }


def _discover(core_v1: Any) -> list[ClusterGpuOffer]:
    return offers_from_objects(*KubeGateway(core_v1.api_client).list_nodes_and_pods())


@pytest.mark.cluster
def test_discovery_on_local_control_plane(core_v1: Any, namespace: str) -> None:
    before = by_node(_discover(core_v1))
    assert {"gpu-h100-0", "gpu-h100-1", "gpu-a10g-0"} <= set(before)
    assert before["gpu-h100-0"].allocatable == 8 and before["gpu-h100-0"].product == H100
    assert before["gpu-a10g-0"].memory_gib == pytest.approx(23028 / 1024, abs=0.01)
    if before["gpu-h100-0"].free < 3:
        pytest.skip("gpu-h100-0 is busy with other tests' pods")
    core_v1.create_namespaced_pod(namespace, _gpu_pod_manifest("planner-busy", "gpu-h100-0", 3))
    deadline = time.monotonic() + 60
    while not core_v1.read_namespaced_pod("planner-busy", namespace).spec.node_name:
        assert time.monotonic() < deadline, "the scheduler did not bind the GPU pod"
        time.sleep(0.5)
    after = by_node(_discover(core_v1))
    assert after["gpu-h100-0"].requested == before["gpu-h100-0"].requested + 3
    assert after["gpu-h100-0"].free == before["gpu-h100-0"].free - 3
    core_v1.delete_namespaced_pod("planner-busy", namespace, grace_period_seconds=0)


@pytest.mark.cluster
def test_indexed_capacity_matches_a_listing_of_the_real_api(core_v1: Any) -> None:
    """The operator's kopf indexes read the API server's own Node and Pod JSON: fed each listed object
    (as kopf feeds them from its watches), they give the very offers a fresh listing gives."""
    import asyncio

    import kopf

    from finetune_operator.handlers.indexes import gpu_capacity, gpu_nodes, gpu_pods
    from finetune_operator.planning.cluster import offers_from_nodes

    nodes, pods = KubeGateway(core_v1.api_client).list_nodes_and_pods()

    def index(fn: Any, objects: list[dict[str, Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for obj in objects:
            for key, value in asyncio.run(fn(body=kopf.Body(obj))).items():
                out.setdefault(key, []).append(value)
        return out

    listed, busy = gpu_capacity(index(gpu_nodes, nodes), index(gpu_pods, pods))
    assert {n["metadata"]["name"] for n in listed} >= {"gpu-h100-0", "gpu-h100-1", "gpu-a10g-0"}
    assert offers_from_nodes(listed, busy) == offers_from_objects(nodes, pods)
