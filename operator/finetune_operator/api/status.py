"""`FineTuneJob.status`: what the operator observed. Conditions are the truth; `phase` summarises them."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from finetune_training.camel import CamelModel
from finetune_training.events import DataRows
from finetune_training.plan import ColumnMapping, Conversion, Hyperparameters, PeftMode


class Phase(StrEnum):
    """A one-word summary of the conditions, for `kubectl get ftj`."""

    PENDING = "Pending"
    VALIDATING = "Validating"
    BLOCKED = "Blocked"
    """Waiting on something the user or the world can fix (see the `Blocked` condition)."""
    PLANNED = "Planned"
    SUSPENDED = "Suspended"
    """`spec.suspend: true`: validated and planned (a started run checkpointed and stopped)."""
    QUEUED = "Queued"
    RUNNING = "Running"
    PUBLISHING = "Publishing"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED})


class ConditionType(StrEnum):
    """Condition types, in the order a job reaches them. `kubectl wait --for=condition=Complete`."""

    DATASET_VALIDATED = "DatasetValidated"
    HARDWARE_PLANNED = "HardwarePlanned"
    SUBMITTED = "Submitted"
    TRAINING = "Training"
    MODEL_PUSHED = "ModelPushed"
    GGUF_PUSHED = "GGUFPushed"
    COMPLETE = "Complete"
    FAILED = "Failed"
    RETRYING = "Retrying"
    """True while a transient error (Hub or API 5xx, timeout, conflict) is being retried with backoff."""
    BLOCKED = "Blocked"
    """True while a problem the user or the world can fix holds the job (a missing Secret, a dataset that
    needs a mapping, a budget below the cost, no free hardware). Re-checked on every spec change and on a
    bounded timer; never terminal."""


class Condition(CamelModel):
    """A Kubernetes API convention condition."""

    type: str
    status: str = Field(pattern="^(True|False|Unknown)$")
    reason: str
    """CamelCase reason a user can search for."""
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class Verdict(StrEnum):
    """Whether a dataset can train with a method."""

    READY = "Ready"
    NEEDS_MAPPING = "NeedsMapping"
    INCOMPATIBLE = "Incompatible"


class MethodVerdict(CamelModel):
    """The dataset's verdict for one method."""

    method: str
    """SFT, DPO, GRPO or KTO."""
    verdict: Verdict
    reason: str
    conversion: Conversion | None = None
    """The named conversion to set in `spec.dataset.conversion`, when NeedsMapping."""
    columns: ColumnMapping | None = None
    """The renames to set in `spec.dataset.columns`, when NeedsMapping."""


class ValidationSummary(CamelModel):
    """A compact dataset verdict as stored in status."""

    dataset: str
    split: str | None = None
    rows: int | None = None
    """Row count from metadata, when the source has it."""
    format: str | None = None
    """The format recognised (e.g. `messages`, `alpaca`, `sharegpt`)."""
    verdicts: list[MethodVerdict] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    mean_tokens: float | None = None
    """Mean tokens per row (estimated when the tokenizer could not be had)."""


class PlanSummary(CamelModel):
    """The hardware plan and estimate."""

    backend: str
    """HFJobs, Kubernetes or Local."""
    target: str
    """What `kubectl get` shows: `HFJobs/a10g-large`, `Kubernetes/1xNVIDIA-A10G`, `Local/cpu`."""
    flavor: str | None = None
    gpu_count: int = 0
    """GPUs on each node."""
    nodes: int = 1
    """Machines the run spans (Kubernetes backend: one pod each, joined by torchrun)."""
    gpu_product: str | None = None
    gpu_memory_gib: float | None = None
    """Memory of each GPU (None on a CPU target: see `ramGib`)."""
    ram_gib: float | None = None
    """A CPU target's memory (RAM) the plan counted on."""
    peft: PeftMode
    parameters_billions: float | None = None
    memory_gib: float
    """Estimated peak memory per GPU (of RAM on a CPU target)."""
    estimated_hours: float
    estimated_cost_usd: float = Field(alias="estimatedCostUSD")
    hourly_price_usd: float = Field(default=0.0, alias="hourlyPriceUSD")
    """What the chosen hardware costs per hour, all its GPUs together (the budget guard's rate)."""
    suggested_timeout: str
    tokens: int | None = None
    reason: str
    """Why this hardware and PEFT mode."""
    hyperparameters: Hyperparameters | None = None
    """The resolved training settings (spec overrides on top of the method's defaults)."""


class EvaluationProgress(CamelModel):
    """Held-out evaluation: the base model's score, and the latest during or after training."""

    base_loss: float | None = None
    """The base model's evaluation loss, before any training step."""
    loss: float | None = None
    """The latest evaluation loss (the final one once training ended)."""
    step: int | None = None
    """The step of the latest evaluation."""
    metrics: dict[str, float] | None = None
    """The latest evaluation's other figures (`mean_token_accuracy`, `rewards/accuracies`, `reward`, …)."""
    base_metrics: dict[str, float] | None = None
    """The base model's figures, to compare with `metrics`."""


class Progress(CamelModel):
    """Live training progress, parsed from the runtime's progress lines."""

    step: int = 0
    total_steps: int | None = None
    epoch: float | None = None
    """Passes over the training examples (see `rows`: with packing an epoch is fewer steps than rows)."""
    loss: float | None = None
    """Latest training loss. For GRPO it stays near 0 and means little: read `reward`."""
    first_loss: float | None = None
    """The first loss logged (DPO starts at ln 2 = 0.693), to compare the latest one with."""
    reward: float | None = None
    """GRPO: mean reward of the latest logged step's completions (weighted sum over the functions)."""
    first_reward: float | None = None
    """GRPO: the first mean reward logged."""
    rewards: dict[str, float] | None = None
    """GRPO: mean reward per reward function, by function name."""
    reward_accuracy: float | None = None
    """DPO: share of pairs where the model prefers the chosen answer (0.5 is chance; rises with training)."""
    reward_margin: float | None = None
    """DPO: mean reward of chosen minus rejected answers (rises from 0 with training)."""
    elapsed_seconds: float | None = None
    """Training time so far, summed over attempts (from the runtime's clock: start to latest event)."""
    rows: DataRows | None = None
    """How the dataset's rows became examples and steps."""
    evaluation: EvaluationProgress | None = None
    """Held-out evaluation (with `spec.evaluation`): base model, then every `evaluation.steps` and the end."""
    learning_rate: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    percent: str | None = None
    """`42%`, for the printer column."""
    trackio_url: str | None = None
    updated_time: str | None = None


class BackendRef(CamelModel):
    """The backend work carrying out this job."""

    kind: str
    """HFJob, Job or Process."""
    id: str
    namespace: str | None = None
    url: str | None = None
    attempt: int | None = None
    """Which attempt this work carries (1, 2, …)."""
    restarts: int | None = None
    """Runs the backend itself restarted within this attempt (a Job's pods that failed and were replaced,
    each resuming from the last checkpoint)."""


class Outputs(CamelModel):
    """Where the results landed."""

    model: str | None = None
    gguf: list[str] = Field(default_factory=list)
    trackio: str | None = None


class CostReport(CamelModel):
    """What the backend work has cost so far: the plan's hourly price times the time it ran, from the
    backend's own start and end times, summed over attempts."""

    hourly_price_usd: float = Field(alias="hourlyPriceUSD")
    attempt: int = 1
    """The attempt `startedTime`/`endedTime` belong to."""
    started_time: str | None = None
    """When this attempt's work began running, as the backend records it."""
    ended_time: str | None = None
    earlier_seconds: float = 0.0
    """Seconds run by earlier attempts."""
    running_seconds: float = 0.0
    """Seconds run by all attempts."""
    actual_usd: float = Field(default=0.0, alias="actualUSD")
    """Spent so far: `hourlyPriceUSD` x `runningSeconds`."""


class FineTuneJobStatus(CamelModel):
    """Observed state of a FineTuneJob."""

    model_config = CamelModel.model_config | {"extra": "ignore"}

    phase: Phase = Phase.PENDING
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    validation: ValidationSummary | None = None
    plan: PlanSummary | None = None
    progress: Progress | None = None
    backend_ref: BackendRef | None = None
    outputs: Outputs | None = None
    cost: CostReport | None = None
    start_time: str | None = None
    completion_time: str | None = None
    message: str | None = None
    """The latest thing a user should read."""
    attempts: int = 0
    """Backend submissions so far. A new attempt starts only after the previous one ended (a retry after
    an infrastructure failure, a resume after `suspend` or a budget stop), never beside it."""
    monitor: dict[str, Any] | None = None
    """The progress parser's small state (last event seen, warnings raised), so a restart carries on."""


def now() -> str:
    """RFC 3339 timestamp, as Kubernetes writes them."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
