"""Every 403 the operator's API calls meet is a fixable `Forbidden` naming what to grant, never a retry."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from finetune_operator.backends.base import JobTarget, WorkRef
from finetune_operator.backends.kubernetes import KubernetesBackend
from finetune_operator.cluster.gateway import KubeGateway
from finetune_operator.cluster.rbac import PERMISSIONS, Scope, api_error
from finetune_operator.config import OperatorConfig
from finetune_operator.errors import RetryLater, SpecError
from finetune_operator.lifecycle.status_writer import StatusWriter

TARGET = JobTarget(namespace="team-a", name="demo", uid="u1", token_secret_name="hf-token")
REF = WorkRef(kind="Job", id="demo-u1-1", namespace="team-a", attempt=1)


def refuse(status: int) -> Any:
    def call(*_: Any, **__: Any) -> Any:
        raise ApiException(status=status, reason="Forbidden" if status == 403 else "Boom")

    return call


def gateway() -> KubeGateway:
    kube = KubeGateway(client.ApiClient())
    for name in (
        "read_namespaced_secret",
        "create_namespaced_secret",
        "delete_namespaced_secret",
        "list_node",
    ):
        setattr(kube.core, name, refuse(403))
    return kube


def backend() -> KubernetesBackend:
    b = KubernetesBackend(client.ApiClient(), OperatorConfig(enabled_backends=[], metrics_port=0))
    for api in (b.batch, b.core):
        for name in dir(api):
            if name.endswith(("_namespaced_job", "_namespaced_pod", "_namespaced_config_map", "_pod_log")):
                setattr(api, name, refuse(403))
    return b


CALLS = {
    "read the job's token Secret": (
        lambda: gateway().read_secret_value("team-a", "hf-token", "token"),
        "`get` `secrets` in namespace `team-a`",
        "watchNamespaces",
    ),
    "keep the cancel token": (
        lambda: gateway().keep_cancel_token("ftjob-system", "u1", "hf_x"),
        "`create` `secrets` in namespace `ftjob-system`",
        "-self` Role",
    ),
    "read the cancel token": (
        lambda: gateway().read_cancel_token("ftjob-system", "u1"),
        "`get` `secrets` in namespace `ftjob-system`",
        "-self` Role",
    ),
    # Planning without seeing the nodes would send an `Auto` job to a paid backend: never silent.
    "list the GPU nodes": (
        lambda: gateway().list_nodes_and_pods(),
        "`list` `nodes` cluster-wide",
        "ClusterRole",
    ),
    "find the Job": (lambda: backend().find(TARGET), "`list` `jobs` in namespace `team-a`", "-jobs` role"),
    "poll the Job": (lambda: backend().poll(TARGET, REF), "`get` `jobs` in namespace `team-a`", "-jobs"),
    "cancel the Job": (lambda: backend().cancel(TARGET, REF), "`delete` `jobs`", "-jobs"),
    "read pod logs": (lambda: list(backend()._pods(TARGET, REF)), "`list` `pods`", "-jobs"),
}


@pytest.mark.parametrize("name", CALLS)
def test_a_403_is_forbidden_naming_verb_resource_namespace_and_the_grant(name: str) -> None:
    call, names, grant = CALLS[name]
    with pytest.raises(SpecError) as caught:
        call()
    assert caught.value.reason == "Forbidden" and caught.value.fixable  # the job waits Blocked, not Failed
    assert names in caught.value.message and grant in caught.value.message


def test_the_status_writer_names_the_status_subresource() -> None:
    writer = StatusWriter(client.ApiClient())
    writer.custom.patch_namespaced_custom_object_status = refuse(403)  # type: ignore[method-assign]
    with pytest.raises(SpecError, match="`patch` `finetunejobs/status` in namespace `ns`"):
        writer.patch_status("ns", "demo", {}, {"phase": "Queued"})


def test_other_api_errors_stay_transient() -> None:
    assert isinstance(api_error(ApiException(status=503), "get", "jobs", "ns"), RetryLater)
    assert isinstance(api_error(ApiException(status=403), "get", "jobs", "ns"), SpecError)


def test_polling_needs_only_get_jobs_not_the_status_subresource() -> None:
    b = backend()
    asked: list[str] = []
    b.batch.read_namespaced_job = lambda name, ns: asked.append(name) or client.V1Job()  # type: ignore[method-assign]
    b.batch.read_namespaced_job_status = refuse(403)  # type: ignore[method-assign]
    b.core.list_namespaced_pod = lambda *a, **k: client.V1PodList(items=[])  # type: ignore[method-assign]
    assert b.poll(TARGET, REF).state == "Queued" and asked == [REF.id]
    assert ("batch", "jobs", "get") in {(p.group, p.resource, p.verb) for p in PERMISSIONS}
    assert not any(p.resource == "jobs/status" for p in PERMISSIONS)


def test_every_scope_has_permissions() -> None:
    assert {p.scope for p in PERMISSIONS} == set(Scope)
