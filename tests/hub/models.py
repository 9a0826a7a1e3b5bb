"""Pydantic models for the HTTP shapes the stand-in reads and writes.

Field names follow the Hub's JSON (camelCase) through aliases, so ``model_dump(by_alias=True)`` is what goes
on the wire and what ``huggingface_hub`` 2.4.0 parses.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RepoType = Literal["model", "dataset", "space"]
"""Repository kinds; the stand-in stores all three but the project uses models and datasets."""

JobStageName = Literal["SCHEDULING", "RUNNING", "COMPLETED", "ERROR", "CANCELED", "DELETED"]
"""Job stages, as ``huggingface_hub._jobs_api.JobStage`` knows them."""

TERMINAL_STAGES: frozenset[str] = frozenset({"COMPLETED", "ERROR", "CANCELED", "DELETED"})


class _Wire(BaseModel):
    """Base for wire models: accept both aliases and field names, ignore unknown keys from newer clients."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class CreateRepoRequest(_Wire):
    """Body of ``POST /api/repos/create``."""

    name: str
    """Repository name without namespace."""
    organization: str | None = None
    """Namespace; the token's user when absent."""
    type: RepoType = "model"
    """Repository kind."""
    visibility: Literal["public", "private", "protected"] | None = None
    """Visibility requested by ``create_repo(private=...)``."""
    private: bool | None = None
    """Older clients send a boolean instead of ``visibility``."""


class DeleteRepoRequest(_Wire):
    """Body of ``DELETE /api/repos/delete``."""

    name: str
    """Repository name without namespace."""
    organization: str | None = None
    """Namespace; the token's user when absent."""
    type: RepoType = "model"
    """Repository kind."""


class RepoSettingsRequest(_Wire):
    """Body of ``PUT /api/{type}s/{repo}/settings``."""

    private: bool | None = None
    """New privacy flag."""
    visibility: Literal["public", "private", "protected"] | None = None
    """New visibility."""
    gated: Literal["auto", "manual"] | Literal[False] | None = None
    """New gating mode; ``False`` removes gating."""


class BranchRequest(_Wire):
    """Body of ``POST /api/{type}s/{repo}/branch/{branch}``."""

    starting_point: str | None = Field(default=None, alias="startingPoint")
    """Revision the branch starts from; the head of ``main`` when absent."""


class TagRequest(_Wire):
    """Body of ``POST /api/{type}s/{repo}/tag/{revision}``."""

    tag: str
    """Tag name."""
    message: str | None = None
    """Annotation message."""


class LfsObject(_Wire):
    """One object of an LFS batch request."""

    oid: str
    """SHA-256 of the content, hex."""
    size: int
    """Size in bytes."""


class LfsBatchRequest(_Wire):
    """Body of ``POST /{prefix}{repo}.git/info/lfs/objects/batch``."""

    operation: Literal["upload", "download"]
    """Only ``upload`` is served."""
    transfers: list[str] = Field(default_factory=lambda: ["basic"])
    """Transfer adapters the client accepts."""
    objects: list[LfsObject]
    """Objects to transfer."""
    hash_algo: str = "sha256"
    """Hash of the oids."""


class PreuploadFile(_Wire):
    """One file of a preupload request."""

    path: str
    """Path in the repo."""
    sample: str
    """First 512 bytes, base64."""
    size: int
    """Size in bytes."""


class PreuploadRequest(_Wire):
    """Body of ``POST /api/{type}s/{repo}/preupload/{revision}``."""

    files: list[PreuploadFile]
    """Files the client is about to commit."""
    git_ignore: str | None = Field(default=None, alias="gitIgnore")
    """Content of a ``.gitignore`` being committed; not interpreted."""


class CommitHeader(_Wire):
    """First NDJSON line of a commit."""

    summary: str
    """Commit title."""
    description: str = ""
    """Commit body."""
    parent_commit: str | None = Field(default=None, alias="parentCommit")
    """Expected head of the branch; a mismatch is a 412."""


class CommitFile(_Wire):
    """An inline (base64) file of a commit."""

    path: str
    """Path in the repo."""
    content: str
    """File content."""
    encoding: Literal["base64", "utf-8"] = "base64"
    """Encoding of ``content``."""


class CommitLfsFile(_Wire):
    """A file of a commit whose bytes were uploaded through LFS."""

    path: str
    """Path in the repo."""
    algo: str = "sha256"
    """Hash algorithm of ``oid``."""
    oid: str
    """SHA-256 of the content."""
    size: int | None = None
    """Size in bytes (absent for copies)."""


class CommitDeletion(_Wire):
    """A ``deletedFile`` or ``deletedFolder`` line of a commit."""

    path: str
    """Path in the repo."""


class CommitLine(_Wire):
    """Any NDJSON line of a commit: ``{"key": ..., "value": {...}}``."""

    key: Literal["header", "file", "lfsFile", "deletedFile", "deletedFolder"]
    """Kind of line."""
    value: dict[str, Any]
    """Payload, parsed further by ``key``."""


class JobVolume(_Wire):
    """A volume of a job spec; kept and echoed, never mounted."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")


class JobSpecRequest(_Wire):
    """Body of ``POST /api/jobs/{namespace}`` as ``huggingface_hub._jobs_api._create_job_spec`` builds it."""

    docker_image: str | None = Field(default=None, alias="dockerImage")
    """Docker image; ignored by the stand-in, which runs the command locally."""
    space_id: str | None = Field(default=None, alias="spaceId")
    """Space used as image; ignored likewise."""
    command: list[str] = Field(default_factory=list)
    """Command to run."""
    arguments: list[str] = Field(default_factory=list)
    """Arguments appended to ``command``."""
    environment: dict[str, str] = Field(default_factory=dict)
    """Plain environment variables."""
    secrets: dict[str, str] = Field(default_factory=dict)
    """Secret environment variables; never echoed back."""
    flavor: str = "cpu-basic"
    """Hardware flavor; must be in the catalog."""
    timeout_seconds: int | None = Field(default=None, alias="timeoutSeconds")
    """Wall-clock limit; the job ends in ERROR when it runs longer."""
    attempts: int | None = None
    """Attempts (retries + 1); recorded, the stand-in runs once."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Key/value labels, filterable with ``label=k=v``."""
    volumes: list[dict[str, Any]] | None = None
    """Volumes; recorded only."""


class JobOwner(_Wire):
    """Owner of a job."""

    id: str
    """Account id."""
    name: str
    """Account name (the namespace)."""
    type: Literal["user", "org"]
    """Account kind."""


class JobStatus(_Wire):
    """Status block of a job."""

    stage: JobStageName
    """Current stage."""
    message: str | None = None
    """Why the job is in this stage (errors, timeout, cancel)."""


class JobDurations(_Wire):
    """Timing breakdown, computed on each request like the Hub does."""

    scheduling_secs: int | None = Field(default=None, alias="schedulingSecs")
    """Seconds spent in SCHEDULING."""
    running_secs: int | None = Field(default=None, alias="runningSecs")
    """Seconds spent RUNNING (so far)."""
    total_secs: int | None = Field(default=None, alias="totalSecs")
    """Seconds since creation (so far)."""


class JobInitiator(_Wire):
    """What started the job."""

    type: str
    """Always ``user`` here."""
    id: str
    """User id."""
    name: str | None = None
    """User name."""


class JobInfoResponse(_Wire):
    """A job as ``GET /api/jobs/{namespace}/{id}`` returns it."""

    id: str
    """24-hex job id."""
    created_at: str = Field(alias="createdAt")
    """ISO time of creation."""
    started_at: str | None = Field(default=None, alias="startedAt")
    """ISO time the process started."""
    finished_at: str | None = Field(default=None, alias="finishedAt")
    """ISO time the job ended."""
    docker_image: str | None = Field(default=None, alias="dockerImage")
    """Image of the spec."""
    space_id: str | None = Field(default=None, alias="spaceId")
    """Space of the spec."""
    command: list[str]
    """Command of the spec."""
    arguments: list[str]
    """Arguments of the spec."""
    environment: dict[str, str]
    """Plain environment of the spec."""
    secrets: dict[str, str | None]
    """Secret names; values are never returned."""
    flavor: str
    """Hardware flavor."""
    labels: dict[str, str] | None = None
    """Labels."""
    volumes: list[dict[str, Any]] | None = None
    """Volumes."""
    timeout: int | None = None
    """Timeout in seconds."""
    retry: int | None = None
    """Attempts minus one."""
    status: JobStatus
    """Stage and message."""
    durations: JobDurations
    """Timing breakdown."""
    owner: JobOwner
    """Namespace that owns the job."""
    initiator: JobInitiator
    """User that created the job."""


class HardwareAccelerator(_Wire):
    """Accelerator of a hardware flavor, as ``JobAccelerator`` parses it."""

    type: str
    """``gpu``."""
    model: str
    """GPU model, e.g. ``A10G``."""
    quantity: str
    """Number of GPUs, as a string."""
    vram: str
    """Total VRAM, e.g. ``24 GB``."""
    manufacturer: str
    """``Nvidia``."""


class HardwareFlavor(_Wire):
    """One entry of ``GET /api/jobs/hardware``, as ``JobHardwareInfo`` parses it."""

    name: str
    """Flavor id, e.g. ``a10g-large``."""
    pretty_name: str = Field(alias="prettyName")
    """Human-readable name."""
    cpu: str
    """vCPU count, e.g. ``12 vCPU``."""
    ram: str
    """RAM, e.g. ``46 GB``."""
    ephemeral_storage: str = Field(alias="ephemeralStorage")
    """Disk."""
    accelerator: HardwareAccelerator | None = None
    """GPUs; ``None`` for CPU flavors."""
    unit_cost_micro_usd: int = Field(alias="unitCostMicroUSD")
    """Price per ``unitLabel`` in micro-dollars."""
    unit_cost_usd: float = Field(alias="unitCostUSD")
    """Price per ``unitLabel`` in dollars."""
    unit_label: str = Field(alias="unitLabel")
    """Billing unit: ``minute``."""
