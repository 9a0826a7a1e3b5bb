"""Reads a FineTuneJob fresh and writes its status (and, where its work needs one, the operator's finalizer),
under the job's lock, so no write is based on a stale read."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from finetune_operator import FINALIZER, GROUP, PLURAL, VERSION
from finetune_operator.api.resource import FineTuneJob
from finetune_operator.cluster.rbac import api_error
from finetune_operator.errors import RetryLater


class JobGone(Exception):
    """The FineTuneJob is not on the API server any more (its `DELETED` event may have been missed: a watch
    that restarts from a new listing reports no deletion that happened while it was down)."""


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

        Returns the object's resourceVersion after the write; None when nothing was written. Raises
        :class:`JobGone` when the object is gone.
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
                raise JobGone(f"{namespace}/{name}") from None
            raise api_error(exc, "patch", "finetunejobs/status", namespace) from None
        return _version(written)

    def hold(self, job: FineTuneJob) -> str | None:
        """Add the operator's finalizer to `job` (a no-op when it holds it); returns the new resourceVersion.

        A JSON patch that tests the finalizers it read, so another controller's finalizer added meanwhile is
        never overwritten: a lost race is a RetryLater, and the next pass reads afresh. A job being deleted
        takes no new finalizer (the API server refuses it): its deletion goes on, and nothing is submitted.
        """
        meta = job.metadata
        if FINALIZER in meta.finalizers:
            return None
        # `test` against null: the job had none (an `add` of the whole list would replace any added since).
        patch: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/finalizers", "value": meta.finalizers or None},
            {"op": "add", "path": "/metadata/finalizers", "value": [*meta.finalizers, FINALIZER]},
        ]
        try:
            written = self.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                meta.namespace,
                PLURAL,
                meta.name,
                patch,
                _content_type="application/json-patch+json",  # the client's default is a merge patch
            )
        except ApiException as exc:
            if exc.status in (404, 409, 422):  # gone, raced, or being deleted: decide again from a fresh read
                raise RetryLater(
                    f"could not add the finalizer `{FINALIZER}` before submitting ({exc.status} {exc.reason})",
                    delay=2,
                ) from None
            raise api_error(exc, "patch", "finetunejobs", meta.namespace) from None
        meta.finalizers.append(FINALIZER)
        return _version(written)


def _version(written: object) -> str | None:
    """The resourceVersion of the object a write answered with."""
    meta = written.get("metadata") if isinstance(written, dict) else None
    version = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return str(version) if version else None
