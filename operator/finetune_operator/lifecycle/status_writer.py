"""Reads a FineTuneJob fresh and writes its status, under the job's lock, so no write is based on a stale read."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from finetune_operator import GROUP, PLURAL, VERSION
from finetune_operator.cluster.rbac import api_error


class StatusWriter:
    """GET and merge-patch the status subresource of FineTuneJobs."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api_client)

    def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as the API server has it now; None when it is gone."""
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )  # type: ignore[assignment]
            return obj
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise api_error(exc, "get", "finetunejobs", namespace) from None

    def patch_status(self, namespace: str, name: str, old: dict[str, Any], new: dict[str, Any]) -> str | None:
        """Merge-patch the status from `old` to `new` (keys that disappeared are removed with null).

        Returns the object's resourceVersion after the write; None when nothing was written.
        """
        if old == new:
            return None
        body = {"status": {**dict.fromkeys(old.keys() - new.keys()), **new}}
        try:
            written = self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, body
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise api_error(exc, "patch", "finetunejobs/status", namespace) from None
        meta = written.get("metadata") if isinstance(written, dict) else None
        version = meta.get("resourceVersion") if isinstance(meta, dict) else None
        return str(version) if version else None
