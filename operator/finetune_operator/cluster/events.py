"""Kubernetes Events about FineTuneJobs, posted by the operator's own client.

The passes run on the work queue's threads, outside kopf's handlers, where `kopf.event` has no queue to post
to; and a pass's Events are few (one per pass for its Normal steps, one per Warning), so each is one create.
Events are best effort, as everywhere in Kubernetes: a refused one is logged, never retried into the pass.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

COMPONENT = "finetune-operator"
MESSAGE_LIMIT = 1024
"""The longest message posted (the API server accepts more; `kubectl describe` shows a screenful)."""


class EventPoster:
    """Creates core/v1 Events whose involved object is a FineTuneJob (what `kubectl describe ftj` lists)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api_client)
        self.instance = os.environ.get("HOSTNAME") or COMPONENT

    def post(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:MESSAGE_LIMIT],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            # The echo is dropped unread: nothing in it is needed.
            # A plain dict is serialised as it is (the client's model types are only annotations).
            answer: Any = self.core.create_namespaced_event(
                meta["namespace"],
                event,  # type: ignore[arg-type]
                _preload_content=False,
            )
            answer.drain_conn()
            answer.release_conn()
        except (
            Exception
        ) as exc:  # refused, or the API unreachable for a moment: the status says it all the same
            why = exc.status if isinstance(exc, ApiException) else exc
            log.warning(
                "could not post the %s Event for %s/%s: %s", reason, meta["namespace"], meta["name"], why
            )
