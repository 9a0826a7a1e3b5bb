"""The operator's Kubernetes permissions, in one place: what the code calls, where, and which chart rule grants it.

The chart's RBAC (`charts/finetune-operator/templates/rbac.yaml`) is checked against :data:`PERMISSIONS`
by asking the API server what the chart's ServiceAccount may do (tests/integration/test_chart.py), and the
e2e suite runs the operator with exactly those credentials. A 403 from any call becomes a waiting problem
(:func:`api_error`): the job shows `Blocked` / `Forbidden` naming the missing rule, and heals once granted.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from kubernetes.client.exceptions import ApiException

from finetune_operator.errors import RetryLater, SpecError


class Scope(StrEnum):
    """Where a permission is needed."""

    CLUSTER = "cluster"
    """Cluster-scoped resources (or all namespaces): the chart's `<release>-cluster` ClusterRole."""
    WATCHED = "watched"
    """Each namespace holding FineTuneJobs: the `<release>-jobs` ClusterRole, or a Role in each of
    `watchNamespaces`."""
    OPERATOR = "operator"
    """The operator's own namespace (the release namespace): the `<release>-self` Role."""


class Permission(NamedTuple):
    """One (apiGroup, resource, verb) the operator uses, and where."""

    group: str
    resource: str
    verb: str
    scope: Scope
    why: str


def _each(group: str, resource: str, verbs: str, scope: Scope, why: str) -> list[Permission]:
    return [Permission(group, resource, verb, scope, why) for verb in verbs.split()]


PERMISSIONS: tuple[Permission, ...] = (
    # kopf: finds the CRD, watches the resource, patches its finalizer and progress annotations.
    *_each("apiextensions.k8s.io", "customresourcedefinitions", "list watch", Scope.CLUSTER, "kopf's scan"),
    *_each("finetune.dev", "finetunejobs", "list watch patch", Scope.WATCHED, "kopf's watch and finalizer"),
    # The status writer: a fresh read, then a merge patch of the status subresource only.
    *_each("finetune.dev", "finetunejobs", "get", Scope.WATCHED, "reading a job before writing status"),
    *_each("finetune.dev", "finetunejobs/status", "patch", Scope.WATCHED, "writing status"),
    *_each("", "events", "create", Scope.WATCHED, "kopf's Events on FineTuneJobs"),
    *_each("", "secrets", "get", Scope.WATCHED, "the job's `spec.tokenSecretRef`"),
    *_each("", "secrets", "create", Scope.WATCHED, "each Kubernetes attempt's event-signing key"),
    # The Kubernetes backend: a batch Job per attempt, carrying its plan (garbage-collected via owners).
    *_each("batch", "jobs", "create get list delete", Scope.WATCHED, "the training Job"),
    *_each("batch", "jobs", "watch", Scope.WATCHED, "kopf's index of training Jobs (polls read no API)"),
    *_each(
        "", "services", "create", Scope.WATCHED, "the headless Service a multi-node run's pods meet through"
    ),
    *_each(
        "kueue.x-k8s.io", "workloads", "list", Scope.WATCHED, "why Kueue keeps a queued training Job waiting"
    ),
    *_each("kueue.x-k8s.io", "localqueues", "get", Scope.WATCHED, "the ClusterQueue a queued Job waits for"),
    *_each("", "pods", "list", Scope.WATCHED, "why the training pod waits"),
    *_each("", "pods", "watch", Scope.WATCHED, "kopf's index of the GPUs unfinished pods hold"),
    *_each("", "pods/log", "get", Scope.WATCHED, "training progress lines"),
    # Planning: GPU capacity and product labels, kept by kopf's indexes from watches (GPUs held by pods
    # are seen where pods are watched: every namespace in cluster-wide mode, else `watchNamespaces`).
    *_each("", "nodes", "list watch", Scope.CLUSTER, "the GPU catalog (kopf's index of GPU nodes)"),
    # The copy of a token that cancels remote work after its namespace is deleted.
    *_each("", "secrets", "create get update delete", Scope.OPERATOR, "the kept cancel token"),
)
"""Every permission the operator's code uses."""

_GRANTED_BY = {
    Scope.CLUSTER: "the chart's `<release>-cluster` ClusterRole",
    Scope.WATCHED: (
        "the chart's `<release>-jobs` role: in namespaced mode add `{namespace}` to the chart value "
        "`watchNamespaces`"
    ),
    Scope.OPERATOR: "the chart's `<release>-self` Role in the operator's namespace `{namespace}`",
}


def forbidden(verb: str, resource: str, namespace: str | None, scope: Scope = Scope.WATCHED) -> SpecError:
    """The waiting problem for a 403: names what was refused and which chart rule grants it."""
    where = f"in namespace `{namespace}`" if namespace else "cluster-wide"
    grant = _GRANTED_BY[scope].format(namespace=namespace or "")
    return SpecError(
        "Forbidden",
        f"the operator may not `{verb}` `{resource}` {where}: grant it with {grant} (the job re-checks on its own)",
    )


def api_error(
    exc: ApiException, verb: str, resource: str, namespace: str | None, scope: Scope = Scope.WATCHED
) -> SpecError | RetryLater:
    """What an API error means for the job: 403 waits for RBAC (Blocked/Forbidden), the rest is transient.

    Callers handle the statuses they expect (404, 409) first, and raise what this returns.
    """
    if exc.status == 403:
        return forbidden(verb, resource, namespace, scope)
    where = f" in {namespace}" if namespace else ""
    return RetryLater(f"{verb} {resource}{where}: HTTP {exc.status} {exc.reason or ''}".rstrip())
