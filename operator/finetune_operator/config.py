"""The operator's configuration: a YAML file (the Helm chart's ConfigMap) overlaid by `FTJOB_*` variables.

One configuration: the planner's settings are its `planner` section (`PlannerConfig`; Helm values
`config.planner`, variables `FTJOB_PLANNER__<FIELD>`), read by the operator and `ftjob plan` alike through
`planner_service`. The planner's in-cluster prices are `gpu_prices` (they also price the cluster's GPU
offers), and HF Jobs is Auto's fallback only when it is one of `enabled_backends`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, SecretStr, model_validator
from pydantic.alias_generators import to_snake
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from finetune_operator.api.spec import Backend
from finetune_operator.planning.cluster import GpuPrice
from finetune_operator.planning.config import PlannerConfig

LEGACY_PLANNER_KEYS = ("prefer_cluster", "local_gpus", "local_gpu_product", "local_usd_per_hour")
"""Planner settings that were top-level keys (and `FTJOB_<KEY>` variables) before they moved into
`planner`: still read there, into `planner` (a value under `planner` wins)."""


class OperatorConfig(BaseSettings):
    """How this operator installation behaves. Every field has a production default."""

    model_config = SettingsConfigDict(env_prefix="FTJOB_", env_nested_delimiter="__", extra="forbid")

    enabled_backends: list[Backend] = Field(default_factory=lambda: [Backend.HF_JOBS, Backend.KUBERNETES])
    """Backends jobs may use. `Local` runs training inside the operator's own pod or host: enable it only
    for a single GPU box or the demo."""
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
    """On-prem GPU-hour prices (by `nvidia.com/gpu.product` or GPU type) for cost estimates of in-cluster
    runs: the prices of the cluster's GPU offers and the planner's `cluster_gpu_prices`."""
    planner: PlannerConfig = Field(default_factory=PlannerConfig)
    """How hardware is chosen (Helm values `config.planner`, snake_case keys; `FTJOB_PLANNER__<FIELD>`)."""
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
    default_queue: str | None = None
    """Kueue LocalQueue for training Jobs of FineTuneJobs that name no `spec.queue` (the queue of that name
    in each job's namespace). Unset: Jobs without a queue start at once, outside Kueue."""
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
    status_interval_seconds: float = 10.0
    """Least time between two progress updates of one job's status."""
    poll_interval_seconds: float = 15.0
    """How often running jobs are polled (work outside the cluster; jobs whose watch is not there yet)."""
    watched_poll_seconds: float = Field(default=60.0, gt=0)
    """How often a job whose work Kubernetes watches push (the Kubernetes backend's Job and pods) is looked
    at when no watch event says its Job or a pod changed: its log (progress) and cost. A change of its Job
    or a pod is looked at within seconds."""
    workers: int = Field(default=16, ge=1, le=256)
    """Threads that run passes over jobs (the work queue's); the Kubernetes client's connection pool is sized
    to match, so no pass waits for (or discards) a connection."""
    budget_stop_margin_seconds: float = Field(default=120.0, ge=0)
    """The budget guard stops a run this long (plus one poll interval) before it would pass
    `spec.budget.maxCostUSD`: the time the runtime takes to save and push its checkpoint after SIGTERM."""
    stall_minutes: float = 30.0
    """Warn (Event `NoProgress`) when a running job reports nothing for this long."""
    metrics_port: int = 9464
    """Port of the Prometheus `/metrics` endpoint (0 disables it)."""
    trackio_space: str | None = None
    """A trackio Space to sync runs to; default: the runtime's local store only."""

    @model_validator(mode="before")
    @classmethod
    def _planner_section(cls, data: Any) -> Any:
        return _planner_keys_in_planner(data)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment variables as usual, then the older `FTJOB_<KEY>` names of planner settings."""
        return (
            init_settings,
            env_settings,
            _LegacyPlannerEnv(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> OperatorConfig:
        """Read the YAML file named by `path` or `FTJOB_CONFIG` (if any); environment variables win."""
        file = path or os.environ.get("FTJOB_CONFIG")
        data: dict[str, Any] = {}
        if file and Path(file).exists():
            data = yaml.safe_load(Path(file).read_text()) or {}
        return cls.from_mapping(data)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> OperatorConfig:
        """The configuration `data` describes (a config file's contents), overlaid by `FTJOB_*` variables."""
        env_only = cls()  # environment and defaults
        merged = _deep_merge(_planner_keys_in_planner(data), env_only.model_dump(exclude_unset=True))
        return cls.model_validate(merged)


class _LegacyPlannerEnv(PydanticBaseSettingsSource):
    """`FTJOB_LOCAL_USD_PER_HOUR` and the other planner settings' older variable names, into `planner`."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        planner = {}
        for key in LEGACY_PLANNER_KEYS:
            value = os.environ.get(f"FTJOB_{key.upper()}")
            if value is not None:
                planner[key] = value
        return {"planner": planner} if planner else {}


def _planner_keys_in_planner(data: Any) -> Any:
    """Planner settings in `planner` (snake_case keys), older top-level names moved there."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    planner = data.get("planner") or {}
    if isinstance(planner, PlannerConfig):
        planner = planner.model_dump(exclude_unset=True)
    if isinstance(planner, dict):  # snake_case keys (camelCase is read too), so a variable overrides a file
        planner = {to_snake(key): value for key, value in planner.items()}
    if isinstance(planner, dict) and "cluster_gpu_prices" in planner:
        raise ValueError(
            "the planner's in-cluster prices are `gpu_prices` (Helm values `config.gpu_prices`), which "
            "also price the cluster's GPU offers: move `planner.cluster_gpu_prices` there"
        )
    for key in LEGACY_PLANNER_KEYS:
        if key in data:
            value = data.pop(key)
            if isinstance(planner, dict):
                planner.setdefault(key, value)
    if planner:
        data["planner"] = planner
    return data


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
