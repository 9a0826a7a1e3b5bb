"""kopf indexes: what the operator keeps in memory from its watches, read without an API call.

kopf fills each index from the initial listing (before any handler runs, so after a restart too) and
every watch event, and drops an object's entry when the object goes.

- `ftj_phases`: every FineTuneJob under its `status.phase`, counted at each scrape for
  `finetune_operator_jobs{phase}` (terminal jobs included: they never run a handler again).

Index functions are `async`: kopf runs them on its event loop for each watch event, not on the handler
threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from finetune_operator import GROUP, PLURAL, VERSION
from finetune_operator.api.status import Phase


@kopf.index(GROUP, VERSION, PLURAL)
async def ftj_phases(status: kopf.Status, **_: Any) -> dict[str, None]:
    """One entry per FineTuneJob, under its phase (a job without status yet is Pending)."""
    return {str(status.get("phase") or Phase.PENDING.value): None}


def _entries(index: Mapping[Any, Iterable[Any]]) -> dict[Any, list[Any]]:
    """A copy of an index, safe to take from another thread than kopf's event loop (which may change it
    meanwhile: a key gone between the two reads is skipped)."""
    copy: dict[Any, list[Any]] = {}
    for key in list(index):
        store = index.get(key)
        if store is not None:
            copy[key] = list(store)
    return copy


def phase_counts(index: Mapping[str, Iterable[None]]) -> dict[str, int]:
    """FineTuneJobs per phase, from `ftj_phases`."""
    return {phase: len(jobs) for phase, jobs in _entries(index).items()}
