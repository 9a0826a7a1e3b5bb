"""Backend identities derived from the FineTuneJob's UID, so a restarted operator finds its own work."""

from __future__ import annotations

import re

UID_LABEL = "finetune.dev/job-uid"
NAME_LABEL = "finetune.dev/job-name"
MANAGED_BY = {"app.kubernetes.io/managed-by": "finetune-operator"}
# HF Jobs label keys: plain words (the Hub's label grammar is narrower than Kubernetes').
HF_UID_LABEL = "ftjob-uid"
HF_NAME_LABEL = "ftjob-name"
HF_NAMESPACE_LABEL = "ftjob-namespace"


def short_uid(uid: str) -> str:
    """The first 8 hex characters of a UID."""
    return re.sub(r"[^a-z0-9]", "", uid.lower())[:8] or "nouid"


def work_name(name: str, uid: str) -> str:
    """A DNS-1123 name for backend objects: `ftj-<name>-<uid8>` (at most 63 characters)."""
    base = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:48].rstrip("-")
    return f"ftj-{base}-{short_uid(uid)}"


def labels_for(name: str, uid: str) -> dict[str, str]:
    """Labels tying backend objects to their FineTuneJob."""
    return {UID_LABEL: uid, NAME_LABEL: name[:63], **MANAGED_BY}
