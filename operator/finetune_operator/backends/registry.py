"""Which backends exist: each `spec.backend` value, the kind of work it writes, and how to build it.

This table is the only place outside a backend's own module that names it. Whatever differs between
backends (whether calls need the user's token, a link to show for the work, how its logs are read, whether
it retries a failed run itself) is an attribute or a method of the backend (`base.Backend`); nothing else
branches on which backend it is. Adding a backend is its module, its planner offers
(`planning/offers/`, with one entry in `planning.offers.OFFERS`), a `spec.Backend` value and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client

from finetune_operator.api.spec import Backend as BackendName
from finetune_operator.backends.base import Backend
from finetune_operator.backends.hfjobs import HFJobsBackend
from finetune_operator.backends.kubernetes import KubernetesBackend
from finetune_operator.backends.local import LocalBackend
from finetune_operator.config import OperatorConfig

__all__ = ["REGISTRY", "Registered", "build_backends", "for_kind"]


@dataclass(frozen=True)
class Registered:
    """One backend: the `status.backendRef.kind` of its work, and how to build it."""

    kind: str
    build: Callable[[OperatorConfig, client.ApiClient], Backend]
    """From the operator's configuration and a Kubernetes client (the operator's, or `ftjob`'s)."""


REGISTRY: dict[BackendName, Registered] = {
    BackendName.HF_JOBS: Registered(HFJobsBackend.kind, lambda cfg, api: HFJobsBackend(cfg)),
    BackendName.KUBERNETES: Registered(KubernetesBackend.kind, lambda cfg, api: KubernetesBackend(api, cfg)),
    BackendName.LOCAL: Registered(LocalBackend.kind, lambda cfg, api: LocalBackend(cfg)),
}


def build_backends(cfg: OperatorConfig, api: client.ApiClient) -> dict[str, Backend]:
    """The enabled backends (`cfg.enabled_backends`), by `spec.backend` value (what a plan names)."""
    return {name.value: REGISTRY[name].build(cfg, api) for name in cfg.enabled_backends if name in REGISTRY}


def for_kind(kind: str, cfg: OperatorConfig, api: client.ApiClient) -> Backend | None:
    """The backend whose work is of `kind` (a `status.backendRef.kind`), None for a kind no backend writes."""
    entry = next((e for e in REGISTRY.values() if e.kind == kind), None)
    return entry.build(cfg, api) if entry is not None else None
