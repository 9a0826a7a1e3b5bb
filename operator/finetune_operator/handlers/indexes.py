"""kopf indexes: what the operator keeps in memory from its watches, read without an API call.

kopf fills each index from the initial listing (before any handler runs, so after a restart too) and
every watch event, and drops an object's entry when the object goes.

- `ftj_phases`: every FineTuneJob under its `status.phase`, counted at each scrape for
  `finetune_operator_jobs{phase}` (terminal jobs included: they never run a handler again).
- `gpu_nodes`, `gpu_pods`: the nodes that offer GPUs (what planning reads of them) and the GPUs each
  unfinished pod holds, by node: planning reads the cluster's GPU capacity from here
  (:func:`gpu_capacity`) instead of listing every pod of the cluster per plan. Nodes and pods without
  GPUs index nothing. Pods are watched where the operator serves FineTuneJobs (every namespace, or its
  `watchNamespaces`); the chart grants `list` and `watch` on pods there and on nodes.
- `training_jobs`, `training_pods`: the operator's own training Jobs and their pods (labelled with a
  FineTuneJob's UID), trimmed to what the Kubernetes backend reads, so polling one reads no API
  (`watched.WatchedWork`); each of their events brings the owning job's next look forward
  (`handlers.jobs.WatchedJobs.wake`).

Index functions are `async`: kopf runs them on its event loop for each watch event, not on the handler
threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from finetune_operator import GROUP, PLURAL, VERSION
from finetune_operator.api.status import Phase
from finetune_operator.cluster.identity import UID_LABEL
from finetune_operator.cluster.watched import JOB_NAME_LABEL, owner_uid, trim_job, trim_pod
from finetune_operator.planning.cluster import gpu_node, pod_holds_gpus


@kopf.index(GROUP, VERSION, PLURAL)
async def ftj_phases(status: kopf.Status, **_: Any) -> dict[str, None]:
    """One entry per FineTuneJob, under its phase (a job without status yet is Pending)."""
    return {str(status.get("phase") or Phase.PENDING.value): None}


@kopf.index("v1", "nodes")
async def gpu_nodes(body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """A node that offers GPUs, under its name (what planning reads of it); nothing for the others."""
    node = gpu_node(body)
    return {node["metadata"]["name"]: node} if node is not None else {}


@kopf.index("v1", "pods")
async def gpu_pods(body: kopf.Body, **_: Any) -> dict[str, int]:
    """The GPUs an unfinished pod holds, under its node's name; nothing for the others (a pod that
    finishes leaves the index at its next event)."""
    held = pod_holds_gpus(body)
    return {held[0]: held[1]} if held is not None else {}


def _wake(memo: kopf.Memo, body: kopf.Body) -> None:
    jobs = getattr(memo, "jobs", None)
    uid = owner_uid(body)
    if jobs is not None and uid:
        jobs.wake(uid)


@kopf.index("batch", "v1", "jobs", labels={UID_LABEL: kopf.PRESENT})
async def training_jobs(body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """A training Job (trimmed), under (namespace, name); its change wakes the FineTuneJob."""
    _wake(memo, body)
    meta = body["metadata"]
    return {(meta["namespace"], meta["name"]): trim_job(body)}


@kopf.index("v1", "pods", labels={UID_LABEL: kopf.PRESENT})
async def training_pods(body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """A training pod (trimmed), under (namespace, its Job's name); its change wakes the FineTuneJob."""
    _wake(memo, body)
    job = (body["metadata"].get("labels") or {}).get(JOB_NAME_LABEL)
    return {(body["metadata"]["namespace"], job): trim_pod(body)} if job else {}


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


def gpu_capacity(
    nodes: Mapping[str, Iterable[dict[str, Any]]], pods: Mapping[str, Iterable[int]]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The GPU nodes and the GPUs held per node, from `gpu_nodes` and `gpu_pods` (for
    `planning.cluster.offers_from_nodes`)."""
    listed = [node for entries in _entries(nodes).values() for node in entries]
    busy = {name: sum(counts) for name, counts in _entries(pods).items()}
    return listed, busy
