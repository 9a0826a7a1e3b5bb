"""Each backend's offers to the planner, by `spec.backend` value: the one table planning looks backends up in.

A new backend is its module under `backends/`, its offer module here, a `spec.Backend` value, and one entry
here and in `backends/registry.py`.
"""

from __future__ import annotations

from finetune_operator.api.spec import Backend
from finetune_operator.planning.offers.base import CPU, Candidate, Inputs, Offers, names_hardware
from finetune_operator.planning.offers.hfjobs import HFJobsOffers
from finetune_operator.planning.offers.kubernetes import KubernetesOffers
from finetune_operator.planning.offers.local import LocalOffers

__all__ = ["CPU", "OFFERS", "Candidate", "Inputs", "Offers", "names_hardware"]

OFFERS: dict[Backend, Offers] = {
    Backend.HF_JOBS: HFJobsOffers(),
    Backend.KUBERNETES: KubernetesOffers(),
    Backend.LOCAL: LocalOffers(),
}
"""Every backend but `Auto`, which chooses among them (`policy._tiers`)."""
