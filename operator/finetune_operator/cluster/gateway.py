"""The operator's narrow view of the Kubernetes API: secrets, nodes and pods (for planning)."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from finetune_operator.cluster.identity import MANAGED_BY, UID_LABEL
from finetune_operator.cluster.rbac import Scope, api_error
from finetune_operator.errors import SpecError


def cancel_secret_name(uid: str) -> str:
    """The operator's own Secret holding what cancels a job's remote work."""
    return f"ftjob-cancel-{uid}"


SECRET_RECHECK_SECONDS = 60.0
"""How long a read Secret is reused before it is read again (a rotated token is picked up within this
time, or at the job's next check once the Hub refused the old one: see `KubeGateway.forget_secret`)."""


@dataclass(frozen=True)
class _ReadSecret:
    resource_version: str
    data: dict[str, str]
    read_at: float

    def __repr__(self) -> str:  # never the values
        return f"_ReadSecret(resource_version={self.resource_version!r}, keys={sorted(self.data)})"


class KubeGateway:
    """Reads what the reconcile loop needs from the cluster.

    A token Secret is read once and reused by every pass of every job that names it, for
    `secret_recheck_seconds`, then read again (a new resourceVersion replaces it). The operator cannot
    watch Secrets (that needs `list`/`watch` on all of them), so this bounds the reads instead: one GET per
    Secret per period, not one per job per tick. A missing Secret or key is never remembered.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        secret_recheck_seconds: float = SECRET_RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.secret_recheck_seconds = secret_recheck_seconds
        self._clock = clock
        self._secrets: dict[tuple[str, str], _ReadSecret] = {}
        self._secrets_lock = threading.Lock()

    def forget_secret(self, namespace: str, name: str) -> None:
        """Read this Secret afresh next time (its token was refused, or a key was missing)."""
        with self._secrets_lock:
            self._secrets.pop((namespace, name), None)

    def _secret_data(self, namespace: str, name: str, key: str) -> dict[str, str]:
        now = self._clock()
        with self._secrets_lock:
            known = self._secrets.get((namespace, name))
        if known is not None and now - known.read_at < self.secret_recheck_seconds:
            return known.data
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            self.forget_secret(namespace, name)
            if exc.status == 404:
                raise SpecError(
                    "TokenSecretNotFound",
                    f"Secret `{name}` (from `spec.tokenSecretRef`) does not exist in namespace `{namespace}`: "
                    f"create it with `kubectl create secret generic {name} --from-literal={key}=hf_...`",
                ) from None
            raise api_error(exc, "get", "secrets", namespace) from None
        version = str((secret.metadata and secret.metadata.resource_version) or "")
        listed: dict[str, Any] = secret.data or {}
        data = {k: str(v) for k, v in listed.items() if v}  # base64, decoded per key when asked
        with self._secrets_lock:
            # Entries past their period would be read again anyway: drop them (Secrets of jobs long gone).
            stale = [k for k, v in self._secrets.items() if now - v.read_at >= self.secret_recheck_seconds]
            for k in stale:
                del self._secrets[k]
            self._secrets[(namespace, name)] = _ReadSecret(version, data, now)
        return data

    def read_secret_value(self, namespace: str, name: str, key: str) -> str:
        """One key of a Secret, decoded. Missing Secret or key is a user mistake."""
        values = self._secret_data(namespace, name, key)
        raw = values.get(key)
        if not raw:
            self.forget_secret(namespace, name)  # the key may be added next: read it afresh then
            raise SpecError(
                "TokenSecretKeyMissing",
                f"Secret `{name}` has no key `{key}`: set `spec.tokenSecretRef.key` to one of "
                f"{sorted(values)}",
            )
        return base64.b64decode(raw).decode().strip()

    # -- what is needed to cancel, kept apart from the user's Secret ---------------------------------------
    # `kubectl delete namespace` removes the token Secret together with the FineTuneJob, yet cancelling paid
    # remote work (an HF Job) needs that token. A copy lives in the operator's own namespace while the work
    # runs, and goes when the work has ended or been cancelled.
    def keep_cancel_token(self, namespace: str, uid: str, token: str) -> None:
        """Keep the token that can cancel this job's remote work (idempotent)."""
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(name=cancel_secret_name(uid), labels={UID_LABEL: uid, **MANAGED_BY}),
            string_data={"token": token},
        )
        try:
            self.core.create_namespaced_secret(namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise api_error(exc, "create", "secrets", namespace, Scope.OPERATOR) from None
            try:
                self.core.replace_namespaced_secret(cancel_secret_name(uid), namespace, body)
            except ApiException as again:
                raise api_error(again, "update", "secrets", namespace, Scope.OPERATOR) from None

    def read_cancel_token(self, namespace: str, uid: str) -> str | None:
        """The kept token, if any."""
        try:
            secret = self.core.read_namespaced_secret(cancel_secret_name(uid), namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise api_error(exc, "get", "secrets", namespace, Scope.OPERATOR) from None
        data = (secret.data or {}).get("token")
        return base64.b64decode(data).decode() if data else None

    def drop_cancel_token(self, namespace: str, uid: str) -> None:
        """Forget the kept token (the work has ended); nothing to do when it is gone."""
        try:
            self.core.delete_namespaced_secret(cancel_secret_name(uid), namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise api_error(exc, "delete", "secrets", namespace, Scope.OPERATOR) from None

    def list_nodes_and_pods(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Nodes and non-terminal pods as API JSON dicts, for GPU discovery."""
        sanitize = self.api_client.sanitize_for_serialization
        try:
            nodes = [sanitize(n) for n in self.core.list_node().items]
        except ApiException as exc:
            # The chart grants `list nodes` in both modes: a 403 is a broken install, shown as Forbidden.
            # Planning on as if the cluster had no GPUs would send an `Auto` job to a paid backend.
            raise api_error(exc, "list", "nodes", None, Scope.CLUSTER) from None
        try:
            live = "status.phase!=Succeeded,status.phase!=Failed"
            pods = [sanitize(p) for p in self.core.list_pod_for_all_namespaces(field_selector=live).items]
        except ApiException as exc:
            if exc.status != 403:
                raise api_error(exc, "list", "pods", None, Scope.CLUSTER) from None
            pods = []  # namespaced RBAC: GPUs used by other namespaces cannot be seen
        return nodes, pods
