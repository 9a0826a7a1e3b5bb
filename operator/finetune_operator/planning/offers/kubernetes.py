"""The Kubernetes backend's offers: the cluster's GPU nodes, on one node or spread over several whole ones."""

from __future__ import annotations

from finetune_operator.api.spec import Backend, HardwareSpec
from finetune_operator.errors import SpecError
from finetune_operator.planning.cluster import ClusterGpuOffer, price_for
from finetune_operator.planning.config import PlannerConfig
from finetune_operator.planning.gpus import GpuType
from finetune_operator.planning.offers.base import POWERS_OF_TWO, Candidate, Inputs, gpu_for


def _matches(offer: ClusterGpuOffer, product: str) -> bool:
    p = product.lower()
    return offer.product.lower() == p or (offer.gpu_type or "").lower() == p


def cluster_candidates(
    inp: Inputs, product: str | None = None, count: int | None = None, nodes: int | None = None
) -> list[Candidate]:
    """In-cluster options: `count` GPUs on one node (each power of two when None), and, up to
    `max_nodes`, several whole nodes of one product (only those: a run spread over part-used nodes waits on
    the slowest link for nothing). `nodes` (from `hardware.nodes`) asks for exactly that many, with `count`
    GPUs on each."""
    products: dict[str, list[ClusterGpuOffer]] = {}
    for o in inp.offers:
        if product is None or _matches(o, product):
            products.setdefault(o.product, []).append(o)
    cfg = inp.config
    out = []
    for name, offers in products.items():
        most = max(o.allocatable for o in offers)
        gpu = gpu_for(name, min(o.memory_gib for o in offers) or None)
        price = offers[0].usd_per_gpu_hour or price_for(name, cfg.cluster_gpu_prices)
        if nodes and nodes > 1:
            per_node = count or most
            if per_node <= most and len([o for o in offers if o.allocatable >= per_node]) >= nodes:
                out.append(_cluster_option(name, offers, gpu, price, per_node, nodes))
            continue
        counts = [count] if count else [c for c in POWERS_OF_TWO if c <= min(most, cfg.max_gpus)]
        out.extend(_cluster_option(name, offers, gpu, price, c, 1) for c in counts if c <= most)
        whole = len([o for o in offers if o.allocatable >= most])
        if count is None and nodes is None:
            out.extend(
                _cluster_option(name, offers, gpu, price, most, n)
                for n in range(2, min(whole, cfg.max_nodes) + 1)
            )
    return out


def _cluster_option(
    name: str, offers: list[ClusterGpuOffer], gpu: GpuType, price: float, per_node: int, machines: int
) -> Candidate:
    """`machines` nodes of product `name` with `per_node` GPUs each; free now when enough nodes have them."""
    able = [o for o in offers if o.allocatable >= per_node]
    free = [o for o in able if o.free >= per_node]
    target = f"{per_node}x{name}" if machines == 1 else f"{machines}x{per_node}x{name}"
    total = per_node * machines
    return Candidate(
        Backend.KUBERNETES,
        f"Kubernetes/{target}",
        gpu,
        total,
        total * price,
        gpu_product=name,
        free_now=len(free) >= machines,
        nodes=machines,
    )


class KubernetesOffers:
    rented = False
    wrong_hardware = (
        "`hardware.flavor` is an HF Jobs flavor; backend Kubernetes takes `hardware.gpuCount`/`gpuProduct`/"
        "`nodes`"
    )
    reason = "free in-cluster GPUs preferred"
    needs_catalog = False
    needs_cluster_gpus = True
    reads_local_paths = False

    def in_auto(self, config: PlannerConfig) -> bool:
        return True

    def disabled(self, config: PlannerConfig) -> PlannerConfig:
        return config  # its offers are simply not gathered (`needs_cluster_gpus`)

    def offered(self, inp: Inputs) -> list[Candidate]:
        return cluster_candidates(inp)

    def chosen(self, inp: Inputs, hardware: HardwareSpec) -> list[Candidate] | None:
        hw = hardware
        if hw.flavor:
            return None
        cands = cluster_candidates(inp, hw.gpu_product, hw.gpu_count, hw.nodes)
        if not cands:
            have = sorted({f"{o.product} (up to {o.allocatable} per node)" for o in inp.offers}) or [
                "no GPU nodes"
            ]
            wanted = f"{hw.gpu_count or 1}x{hw.gpu_product or 'GPU'}"
            if hw.nodes and hw.nodes > 1:
                wanted = (
                    f"{hw.nodes} nodes with {hw.gpu_count or 'all their'} {hw.gpu_product or 'GPU'}s each"
                )
            raise SpecError("NoHardwareFits", f"no node offers {wanted}; the cluster has: {', '.join(have)}")
        return cands
