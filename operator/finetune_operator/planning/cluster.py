"""In-cluster GPUs: what each node offers and what is free now, from Node and Pod objects.

A node offers `status.allocatable["nvidia.com/gpu"]` GPUs of the product its `nvidia.com/gpu.product` label
names, with `nvidia.com/gpu.memory` MiB each (labels set by NVIDIA's GPU feature discovery). GPUs requested
by pods bound to the node that have not finished (phase not Succeeded/Failed) are busy. A pod's request is
the larger of its containers' sum and its largest init container (the scheduler's rule); an extended
resource's request equals its limit, so a limit alone counts. Cordoned or NotReady nodes offer nothing free.
Nodes a training pod could never land on are no offer at all: a `NoSchedule`/`NoExecute` taint the training
pods do not tolerate, or labels that miss the operator's extra node selector (both from its configuration,
the same ones the Kubernetes backend puts on the pods).

The pure functions take dicts shaped as the Kubernetes API's JSON. The operator keeps what they need in
memory from watch events (kopf indexes of :func:`gpu_node` per GPU node and :func:`pod_gpu_request` per
unfinished pod holding GPUs, by node: `finetune_operator.handlers.indexes`) and plans with
:func:`offers_from_nodes`; the CLI lists them once (`finetune_operator.cluster.gateway.KubeGateway.list_nodes_and_pods`)
and plans with :func:`offers_from_objects`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import Field

from finetune_operator.planning.gpus import gpu_type_for
from finetune_training.camel import CamelModel

GPU_RESOURCE = "nvidia.com/gpu"
PRODUCT_LABEL = "nvidia.com/gpu.product"
MEMORY_LABEL = "nvidia.com/gpu.memory"
_DONE = {"Succeeded", "Failed"}


class GpuPrice(CamelModel):
    """What one in-cluster GPU costs per hour (Helm values `config.gpu_prices`)."""

    product: str
    """A `nvidia.com/gpu.product` value, or a GPU type name (`H100`) that covers every variant."""
    usd_per_gpu_hour: float = Field(alias="usdPerGPUHour", ge=0)


class ClusterGpuOffer(CamelModel):
    """The GPUs of one node."""

    node: str
    product: str
    """`nvidia.com/gpu.product` label value (`NVIDIA-H100-80GB-HBM3`)."""
    gpu_type: str | None = None
    """Known GPU type name (`H100`), for throughput; None for a product the table lacks."""
    memory_gib: float
    """Memory per GPU."""
    capacity: int
    allocatable: int
    requested: int
    """GPUs requested by unfinished pods bound to the node."""
    free: int
    schedulable: bool = True
    usd_per_gpu_hour: float = Field(default=0.0, alias="usdPerGPUHour")
    """From the configured price table; 0 when unpriced (already paid for)."""


def _count(value: Any) -> int:
    if value is None:
        return 0
    try:
        return int(str(value))
    except ValueError:
        return 0


def _container_gpus(container: Mapping[str, Any]) -> int:
    res = container.get("resources") or {}
    requests = res.get("requests") or {}
    limits = res.get("limits") or {}
    return _count(requests.get(GPU_RESOURCE, limits.get(GPU_RESOURCE)))


def pod_gpu_request(pod: Mapping[str, Any]) -> int:
    """GPUs a pod holds: max(sum of containers, largest init container).

    Parameters
    ----------
    pod
        A Pod as Kubernetes JSON.

    Returns
    -------
    int
    """
    spec = pod.get("spec") or {}
    main = sum(_container_gpus(c) for c in spec.get("containers") or [])
    init = max((_container_gpus(c) for c in spec.get("initContainers") or []), default=0)
    return max(main, init)


def pod_holds_gpus(pod: Mapping[str, Any]) -> tuple[str, int] | None:
    """The node and GPU count of a pod that holds GPUs now (bound, not finished, requesting some), else None."""
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name or (pod.get("status") or {}).get("phase") in _DONE:
        return None
    gpus = pod_gpu_request(pod)
    return (str(node_name), gpus) if gpus > 0 else None


def busy_gpus(pods: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """GPUs held by unfinished pods, per node name."""
    busy: dict[str, int] = {}
    for pod in pods:
        held = pod_holds_gpus(pod)
        if held is not None:
            busy[held[0]] = busy.get(held[0], 0) + held[1]
    return busy


def gpu_node(node: Mapping[str, Any]) -> dict[str, Any] | None:
    """What planning reads of a node that offers GPUs (labels, taints, cordon, readiness, GPU counts), as
    plain dicts; None for a node without GPUs. Kept per GPU node, so the cache stays small."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    capacity = (status.get("capacity") or {}).get(GPU_RESOURCE)
    allocatable = (status.get("allocatable") or {}).get(GPU_RESOURCE, capacity)
    if _count(allocatable) <= 0:
        return None
    ready = [dict(c) for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return {
        "metadata": {"name": str(meta.get("name")), "labels": dict(meta.get("labels") or {})},
        "spec": {
            "unschedulable": bool(spec.get("unschedulable")),
            "taints": [dict(t) for t in spec.get("taints") or []],
        },
        "status": {
            "capacity": {GPU_RESOURCE: capacity},
            "allocatable": {GPU_RESOURCE: allocatable},
            "conditions": [{"type": c.get("type"), "status": c.get("status")} for c in ready],
        },
    }


def price_for(product: str, prices: Iterable[GpuPrice]) -> float:
    """Cost per GPU-hour of a product: an exact product entry, else its GPU type's, else 0."""
    prices = list(prices)
    kind = gpu_type_for(product)
    for price in prices:
        if price.product == product:
            return price.usd_per_gpu_hour
    for price in prices:
        if kind is not None and price.product == kind.name:
            return price.usd_per_gpu_hour
    return 0.0


def _ready(node: Mapping[str, Any]) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    return ready is None or ready.get("status") == "True"


def tolerates(taint: Mapping[str, Any], tolerations: Iterable[Mapping[str, Any]]) -> bool:
    """True when one of the tolerations matches the taint (the scheduler's rule).

    An empty toleration effect matches every effect; `Exists` with no key matches every taint; `Equal` (the
    default operator) needs the same key and value.
    """
    for toleration in tolerations:
        effect = toleration.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = toleration.get("key") or ""
        if (toleration.get("operator") or "Equal") == "Exists":
            if not key or key == taint.get("key"):
                return True
        elif key == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def accepts_pods(
    node: Mapping[str, Any], tolerations: Iterable[dict[str, Any]] | None, node_selector: dict[str, str]
) -> bool:
    """True when training pods with these tolerations (None: taints not checked) and this node selector may
    be scheduled on the node."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in node_selector.items()):
        return False
    if tolerations is None:
        return True
    tolerations = list(tolerations)
    taints = (node.get("spec") or {}).get("taints") or []
    return all(tolerates(t, tolerations) for t in taints if t.get("effect") in ("NoSchedule", "NoExecute"))


def offers_from_objects(
    nodes: Sequence[dict[str, Any]],
    pods: Sequence[dict[str, Any]],
    prices: Iterable[GpuPrice] = (),
    *,
    tolerations: Iterable[dict[str, Any]] | None = None,
    node_selector: dict[str, str] | None = None,
) -> list[ClusterGpuOffer]:
    """GPU offers per node, with what is free now.

    Parameters
    ----------
    nodes
        Nodes as Kubernetes JSON (`metadata.labels`, `spec.taints`, `status.capacity`, `status.allocatable`).
    pods
        Pods as Kubernetes JSON (`spec.nodeName`, `status.phase`, containers' resources).
    prices
        On-prem cost per GPU-hour by product or GPU type.
    tolerations
        The training pods' tolerations; None skips the taint check (every node counts).
    node_selector
        The training pods' extra node selector (the GPU product label is chosen later, by the plan).

    Returns
    -------
    list[ClusterGpuOffer]
        One per node with at least one GPU, most free GPUs first.
    """
    return offers_from_nodes(
        nodes, busy_gpus(pods), prices, tolerations=tolerations, node_selector=node_selector
    )


def offers_from_nodes(
    nodes: Iterable[Mapping[str, Any]],
    busy: Mapping[str, int],
    prices: Iterable[GpuPrice] = (),
    *,
    tolerations: Iterable[dict[str, Any]] | None = None,
    node_selector: dict[str, str] | None = None,
) -> list[ClusterGpuOffer]:
    """GPU offers per node, from the nodes and the GPUs held on each (:func:`busy_gpus`); see
    :func:`offers_from_objects`."""
    prices = list(prices)
    offers = []
    for node in nodes:
        if not accepts_pods(node, tolerations, node_selector or {}):
            continue
        meta = node.get("metadata") or {}
        status = node.get("status") or {}
        capacity = _count((status.get("capacity") or {}).get(GPU_RESOURCE))
        allocatable = _count((status.get("allocatable") or {}).get(GPU_RESOURCE, capacity))
        if allocatable <= 0:
            continue
        labels = meta.get("labels") or {}
        product = str(labels.get(PRODUCT_LABEL) or "unknown")
        kind = gpu_type_for(product)
        mib = _count(labels.get(MEMORY_LABEL))
        memory = round(mib / 1024, 2) if mib else (kind.memory_gib if kind else 0.0)
        requested = busy.get(meta.get("name", ""), 0)
        schedulable = _ready(node)
        offers.append(
            ClusterGpuOffer(
                node=str(meta.get("name")),
                product=product,
                gpu_type=kind.name if kind else None,
                memory_gib=memory,
                capacity=capacity,
                allocatable=allocatable,
                requested=requested,
                free=max(allocatable - requested, 0) if schedulable else 0,
                schedulable=schedulable,
                usd_per_gpu_hour=price_for(product, prices),
            )
        )
    return sorted(offers, key=lambda o: (-o.free, o.node))
