"""The operator's configuration: a YAML file (the Helm chart's ConfigMap) overlaid by `FTJOB_*` variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from finetune_operator.api.spec import Backend
from finetune_operator.planning.cluster import GpuPrice


class OperatorConfig(BaseSettings):
    """How this operator installation behaves. Every field has a production default."""

    model_config = SettingsConfigDict(env_prefix="FTJOB_", env_nested_delimiter="__", extra="forbid")

    enabled_backends: list[Backend] = Field(default_factory=lambda: [Backend.HF_JOBS, Backend.KUBERNETES])
    """Backends jobs may use. `Local` runs training inside the operator's own pod or host: enable it only
    for a single GPU box or the demo."""
    prefer_cluster: bool = True
    """With `backend: Auto`, use free in-cluster GPUs before paying for HF Jobs."""
    trainer_image: str = "ghcr.io/finetune-operator/trainer:0.1.0"
    """Image that runs `ftjob train` (Kubernetes and HF Jobs backends)."""
    trainer_command: list[str] = Field(default_factory=lambda: ["ftjob", "train"])
    """Command that runs the training runtime; the plan follows as `--plan`."""
    default_token_secret: str | None = None
    """Secret (key `token`) used when a FineTuneJob names no `tokenSecretRef`."""
    operator_namespace: str | None = Field(default_factory=lambda: os.environ.get("POD_NAMESPACE"))
    """The operator's own namespace (the chart sets `POD_NAMESPACE`): it keeps there, while remote work
    runs, the token that can cancel it, so deleting a namespace (and its token Secret) still cancels."""
    hf_endpoint: str | None = None
    """Hub endpoint (a private Hub or the local stand-in); default huggingface.co."""
    hf_namespace: str | None = None
    """HF Jobs namespace (user or org) to run jobs under; default: the token's user."""
    gpu_prices: list[GpuPrice] = Field(default_factory=list)
    """On-prem GPU-hour prices for cost estimates of in-cluster runs."""
    tolerations: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    )
    """Tolerations added to training pods."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Extra node selector for training pods (the GPU product label is added from the plan)."""
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations added to training pods."""
    trainer_cpu: str = "4"
    """CPU request of a training pod (data loading and tokenization run on it)."""
    trainer_memory: str = "32Gi"
    """Memory request of a training pod (host RAM: model loading, data loaders, /dev/shm)."""
    trainer_guaranteed: bool = False
    """Also set CPU and memory limits equal to the requests: the pod's QoS becomes Guaranteed (evicted last,
    never squeezed by neighbours, but killed when it exceeds them). False leaves it Burstable (may use a
    node's idle CPU and memory)."""
    shm_size_limit: str = "8Gi"
    """Size limit of the memory-backed /dev/shm of a training pod (it counts against the pod's memory)."""
    termination_grace_period_seconds: int = Field(default=900, ge=30)
    """How long a stopped training pod has to save and push its last checkpoint before SIGKILL."""
    job_backoff_limit: int = 2
    """Pod retries of a training Job (the runtime resumes from the last checkpoint)."""
    max_attempts: int = Field(default=3, ge=1, le=20)
    """Attempts per FineTuneJob on backends that do not retry by themselves (HF Jobs, Local): a run that
    dies without the runtime's own error (preemption, a killed process, an infrastructure error) is
    resubmitted and resumes from the last Hub checkpoint, until this many attempts have run."""
    job_ttl_seconds_after_finished: int = 7 * 24 * 3600
    """How long finished training Jobs are kept for their logs."""
    events_signing_key: SecretStr | None = None
    """Key from which each attempt's event-signing key derives (the chart's `eventsSigningKey` Secret, as
    `FTJOB_EVENTS_SIGNING_KEY`). Lines a run prints count as progress only when signed with its attempt's
    key. Unset: a key per operator process, so runs started before a restart report no more progress."""
    local_allow_code_rewards: bool = False
    """Let the Local backend run `rewards[].code` (user code, in a child with a scrubbed environment but
    on the operator's host). Off: such jobs fail with `CodeRewardsDisabled`."""
    local_path_roots: list[Path] = Field(default_factory=list)
    """Folders under which datasets and models may be named by local path, on the Local backend only
    (the run reads them on this host). Empty: no local paths; every other backend refuses them."""
    local_workdir: Path = Path("/tmp/finetune-operator")
    """Where the Local backend keeps plans, logs and outputs."""
    local_gpus: int = 0
    """GPUs on the operator's host, for the Local backend's plan (0: CPU)."""
    local_gpu_product: str | None = None
    """GPU type on the operator's host."""
    status_interval_seconds: float = 10.0
    """Least time between two progress updates of one job's status."""
    poll_interval_seconds: float = 15.0
    """How often running jobs are polled."""
    workers: int = Field(default=16, ge=1, le=256)
    """Handler threads (kopf's executor); the Kubernetes client's connection pool is sized to match, so
    no handler waits for (or discards) a connection."""
    budget_stop_margin_seconds: float = Field(default=120.0, ge=0)
    """The budget guard stops a run this long (plus one poll interval) before it would pass
    `spec.budget.maxCostUSD`: the time the runtime takes to save and push its checkpoint after SIGTERM."""
    local_usd_per_hour: float = Field(default=0.0, ge=0)
    """What an hour of the operator's host costs, for `backend: Local` estimates and the budget guard."""
    stall_minutes: float = 30.0
    """Warn (Event `NoProgress`) when a running job reports nothing for this long."""
    metrics_port: int = 9464
    """Port of the Prometheus `/metrics` endpoint (0 disables it)."""
    trackio_space: str | None = None
    """A trackio Space to sync runs to; default: the runtime's local store only."""

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> OperatorConfig:
        """Read the YAML file named by `path` or `FTJOB_CONFIG` (if any); environment variables win."""
        file = path or os.environ.get("FTJOB_CONFIG")
        data: dict[str, Any] = {}
        if file and Path(file).exists():
            data = yaml.safe_load(Path(file).read_text()) or {}
        env_only = cls()  # environment and defaults
        merged = {**data, **env_only.model_dump(exclude_unset=True)}
        return cls.model_validate(merged)
