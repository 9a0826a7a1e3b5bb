"""Work Kubernetes pushes to the operator: training Jobs and their pods from watches.

A running job on the Kubernetes backend needs no poll to learn that its Job or pods changed: kopf watches
them (`handlers.indexes.training_jobs`, `training_pods`: only objects labelled with a FineTuneJob's UID, kept
trimmed to what the backend reads), the backend reads them from there instead of a GET and a pod list, and
each watch event brings the job's next look forward. Between events such a job is looked at only every
`watched_poll_seconds` (its log, for progress, and its cost), so a running job costs about one log read and
one status write a minute. Waiting jobs (queued for GPUs or a queue's quota) cost nothing between events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes import client

from finetune_operator.cluster.identity import UID_LABEL

JOB_NAME_LABEL = "job-name"
"""The label the Job controller puts on its pods (with `batch.kubernetes.io/job-name`)."""
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


def trim_job(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the backend reads of a training Job (its status, whether it is suspended, its labels, UID and age)."""
    meta = body.get("metadata") or {}
    return {
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "labels", "creationTimestamp") if k in meta
        },
        "spec": {"suspend": (body.get("spec") or {}).get("suspend"), "template": {}},
        "status": dict(body.get("status") or {}),
    }


def trim_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the backend reads of a training pod: its name, age and node rank, why it waits or ended."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    index = (meta.get("annotations") or {}).get(COMPLETION_INDEX)
    return {
        "metadata": {
            "name": meta.get("name"),
            "creationTimestamp": meta.get("creationTimestamp"),
            "annotations": {COMPLETION_INDEX: index} if index is not None else None,
        },
        "status": {
            "reason": status.get("reason"),
            "conditions": [c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"],
        },
    }


class WatchedWork:
    """Training Jobs and pods as the watches last saw them (kopf's indexes, keyed by (namespace, Job name)).

    A Job not there yet (the watch lags a create by a moment) reads as unknown: the backend asks the API.
    """

    def __init__(
        self,
        jobs: Mapping[tuple[str, str], Iterable[dict[str, Any]]],
        pods: Mapping[tuple[str, str], Iterable[dict[str, Any]]],
    ) -> None:
        self.jobs = jobs
        self.pods = pods

    def job(self, namespace: str, name: str) -> client.V1Job | None:
        found = list(self.jobs.get((namespace, name)) or ())
        return client.V1Job.from_dict(found[-1]) if found else None

    def pods_of(self, namespace: str, job: str) -> list[client.V1Pod]:
        """The Job's pods, oldest first (none: unknown, or none yet)."""
        found = [client.V1Pod.from_dict(p) for p in list(self.pods.get((namespace, job)) or ())]
        pods = [p for p in found if p is not None]
        return sorted(pods, key=lambda p: str(p.metadata.creation_timestamp if p.metadata else ""))


def owner_uid(body: Mapping[str, Any]) -> str | None:
    """The FineTuneJob UID a training Job or pod is labelled with."""
    return ((body.get("metadata") or {}).get("labels") or {}).get(UID_LABEL)
