"""The whole FineTuneJob object as the operator reads it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from finetune_operator.api.spec import FineTuneJobSpec
from finetune_operator.api.status import FineTuneJobStatus


class ObjectMeta(BaseModel):
    """The parts of metadata the operator uses."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 1
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    deletion_timestamp: str | None = Field(default=None, alias="deletionTimestamp")
    finalizers: list[str] = Field(default_factory=list)


class FineTuneJob(BaseModel):
    """A FineTuneJob: spec as the user wrote it (with the API server's defaults), status as observed."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    api_version: str = Field(default="finetune.dev/v1alpha1", alias="apiVersion")
    kind: str = "FineTuneJob"
    metadata: ObjectMeta
    spec: FineTuneJobSpec
    status: FineTuneJobStatus = Field(default_factory=FineTuneJobStatus)

    @classmethod
    def from_body(cls, body: Any) -> FineTuneJob:
        """Parse a kopf body (or any mapping) into the model."""
        return cls.model_validate(dict(body))
