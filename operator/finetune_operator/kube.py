"""The operator's narrow view of the Kubernetes API: secrets, nodes and pods (for planning)."""

from __future__ import annotations

import base64
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from finetune_operator.errors import RetryLater, SpecError


class KubeGateway:
    """Reads what the reconcile loop needs from the cluster."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)

    def read_secret_value(self, namespace: str, name: str, key: str) -> str:
        """One key of a Secret, decoded. Missing Secret or key is a user mistake."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise SpecError(
                    "TokenSecretNotFound",
                    f"Secret `{name}` (from `spec.tokenSecretRef`) does not exist in namespace `{namespace}`: "
                    f"create it with `kubectl create secret generic {name} --from-literal={key}=hf_...`",
                ) from None
            if exc.status == 403:
                raise SpecError(
                    "TokenSecretForbidden",
                    f"the operator may not read Secret `{name}` in namespace `{namespace}`: "
                    "add this namespace to the chart's `watchNamespaces` (or use cluster-wide mode)",
                ) from None
            raise RetryLater(f"reading Secret {namespace}/{name}: HTTP {exc.status}") from None
        data = (secret.data or {}).get(key)
        if not data:
            raise SpecError(
                "TokenSecretKeyMissing",
                f"Secret `{name}` has no key `{key}`: set `spec.tokenSecretRef.key` to one of "
                f"{sorted((secret.data or {}).keys())}",
            )
        return base64.b64decode(data).decode().strip()

    def list_nodes_and_pods(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Nodes and non-terminal pods as API JSON dicts, for GPU discovery."""
        sanitize = self.api_client.sanitize_for_serialization
        try:
            nodes = [sanitize(n) for n in self.core.list_node().items]
        except ApiException as exc:
            if exc.status == 403:
                return [], []  # without rights to see nodes, plan without in-cluster GPUs
            raise RetryLater(f"listing nodes: HTTP {exc.status}") from None
        try:
            live = "status.phase!=Succeeded,status.phase!=Failed"
            pods = [sanitize(p) for p in self.core.list_pod_for_all_namespaces(field_selector=live).items]
        except ApiException as exc:
            if exc.status != 403:
                raise RetryLater(f"listing pods: HTTP {exc.status}") from None
            pods = []  # namespaced RBAC: GPUs used by other namespaces cannot be seen
        return nodes, pods
