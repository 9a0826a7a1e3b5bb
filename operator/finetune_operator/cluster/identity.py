"""Backend identities derived from the FineTuneJob's UID, so a restarted operator finds its own work."""

from __future__ import annotations

import re

UID_LABEL = "finetune.dev/job-uid"
NAME_LABEL = "finetune.dev/job-name"
ATTEMPT_LABEL = "finetune.dev/attempt"
MANAGED_BY = {"app.kubernetes.io/managed-by": "finetune-operator"}
# HF Jobs label keys: plain words (the Hub's label grammar is narrower than Kubernetes').
HF_UID_LABEL = "ftjob-uid"
HF_NAME_LABEL = "ftjob-name"
HF_NAMESPACE_LABEL = "ftjob-namespace"
HF_ATTEMPT_LABEL = "ftjob-attempt"


def short_uid(uid: str) -> str:
    """The first 8 hex characters of a UID."""
    return re.sub(r"[^a-z0-9]", "", uid.lower())[:8] or "nouid"


def work_name(name: str, uid: str, attempt: int = 1) -> str:
    """A DNS-1123 name for backend objects: `ftj-<name>-<uid8>`, `-<attempt>` from the second attempt on
    (at most 63 characters)."""
    suffix = f"-{attempt}" if attempt > 1 else ""
    base = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[: 48 - len(suffix)].rstrip("-")
    return f"ftj-{base}-{short_uid(uid)}{suffix}"


def labels_for(name: str, uid: str, attempt: int = 1) -> dict[str, str]:
    """Labels tying backend objects to their FineTuneJob and attempt."""
    return {UID_LABEL: uid, NAME_LABEL: name[:63], ATTEMPT_LABEL: str(attempt), **MANAGED_BY}


def is_attempt(labels: dict[str, str] | None, key: str, attempt: int) -> bool:
    """Whether work labelled `labels` belongs to `attempt` (work from before attempts were labelled is
    the first attempt)."""
    value = (labels or {}).get(key)
    return value == str(attempt) if value is not None else attempt == 1
