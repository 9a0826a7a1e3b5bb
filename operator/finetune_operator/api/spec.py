"""`FineTuneJob.spec`: what the user asks for. Every default lives here, never in `.get(k, default)`."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import Field, field_validator

from finetune_training.camel import CamelModel
from finetune_training.plan import (
    MAX_REWARD_CODE_TOTAL,
    DatasetSource,
    Evaluation,
    GGUFQuant,
    LoraSettings,
    Method,
    PeftMode,
    RewardSpec,
)

REPO_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$"
DURATION = r"^([0-9]+(\.[0-9]+)?(s|m|h))+$"


class Backend(StrEnum):
    """Where the training runs."""

    AUTO = "Auto"
    """Free in-cluster GPUs when they fit, else Hugging Face Jobs."""
    HF_JOBS = "HFJobs"
    """Hugging Face Jobs (pay per minute; needs a token)."""
    KUBERNETES = "Kubernetes"
    """A batch/v1 Job on this cluster's GPU nodes."""
    LOCAL = "Local"
    """A process on the operator's host (a single GPU box, or the CPU demo)."""


class ModelSpec(CamelModel):
    """The base model."""

    name: str = Field(min_length=1, max_length=512)
    """Hub model repo id (`Qwen/Qwen3-0.6B`), or a local folder for the Local backend."""
    revision: str | None = Field(default=None, max_length=256)
    """Hub revision (branch, tag or commit); default: the repo's default branch."""


class HyperparametersSpec(CamelModel):
    """Training settings. Every field is optional: unset fields take the method's expert default."""

    epochs: float | None = Field(default=None, gt=0, le=1000)
    """Passes over the dataset (default 1 for SFT/DPO; GRPO defaults to 1 too)."""
    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimizer steps (overrides epochs)."""
    learning_rate: float | None = Field(default=None, gt=0, le=1)
    """Peak learning rate (default 2e-4 with LoRA, 2e-5 full SFT, 5e-7 full DPO, 1e-6 full GRPO)."""
    max_length: int | None = Field(default=None, ge=16, le=1048576)
    """Maximum tokens per example; longer rows are truncated (default 1024; DPO/GRPO prompt+completion)."""
    per_device_batch_size: int | None = Field(default=None, ge=1, le=4096)
    """Examples per GPU per step (default 4; GRPO: a multiple of numGenerations)."""
    gradient_accumulation_steps: int | None = Field(default=None, ge=1, le=4096)
    """Steps accumulated before each optimizer update (default 4)."""
    warmup_ratio: float | None = Field(default=None, ge=0, le=1)
    """Share of steps spent warming up the learning rate (default 0.03)."""
    weight_decay: float | None = Field(default=None, ge=0, le=10)
    """AdamW weight decay (default 0)."""
    lr_scheduler: str | None = Field(default=None, pattern=r"^[a-z_]+$", max_length=64)
    """transformers scheduler name (default cosine)."""
    seed: int | None = Field(default=None, ge=0)
    """Random seed (default 42)."""
    packing: bool | None = None
    """SFT: pack examples into full rows, keeping documents apart (default true)."""
    gradient_checkpointing: bool | None = None
    """Recompute activations to save memory (default: on when the planner needs it)."""
    logging_steps: int | None = Field(default=None, ge=1)
    """Steps between progress reports (default 10)."""
    save_steps: int | None = Field(default=None, ge=1)
    """Steps between checkpoints pushed to the Hub (default 200)."""
    beta: float | None = Field(default=None, ge=0, le=100)
    """DPO: preference temperature (default 0.1). GRPO: KL coefficient (default 0, no reference model)."""
    num_generations: int | None = Field(default=None, ge=2, le=256)
    """GRPO: completions sampled per prompt (default 8)."""
    max_completion_length: int | None = Field(default=None, ge=1, le=131072)
    """GRPO: tokens generated per completion (default 256)."""
    extra_args: dict[str, str | int | float | bool] | None = Field(default=None, max_length=64)
    """Other TRL config fields, passed through as they are (snake_case TRL names)."""


class HardwareSpec(CamelModel):
    """Hardware request. Leave it out (or empty) for Auto: the planner picks the cheapest option that fits."""

    flavor: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)
    """A Hugging Face Jobs flavor (`a10g-large`, `h200x2`); needs `backend: HFJobs`."""
    gpu_count: int | None = Field(default=None, ge=1, le=64)
    """In-cluster GPUs to request (Kubernetes or Local backend); on each node when `nodes` is set."""
    nodes: int | None = Field(default=None, ge=1, le=8)
    """Spread the run over this many nodes (Kubernetes backend), each with `gpuCount` GPUs (default: all
    its GPUs). Leave out to let the planner decide (several nodes only when one node cannot hold the run)."""
    gpu_product: str | None = Field(default=None, max_length=128)
    """In-cluster GPU type, as the `nvidia.com/gpu.product` node label says (`NVIDIA-H100-80GB-HBM3`)."""


class BudgetSpec(CamelModel):
    """Limits on what the job may spend."""

    max_cost_usd: float | None = Field(default=None, alias="maxCostUSD", gt=0, le=1_000_000)
    """Refuse to submit when the estimated cost exceeds this many US dollars."""
    timeout: str | None = Field(default=None, pattern=DURATION, max_length=32)
    """Wall-clock limit for training (`90m`, `4h`); the run is stopped past it. Default: the plan's
    suggested timeout."""


class OutputSpec(CamelModel):
    """Where the trained model goes."""

    repo: str | None = Field(default=None, pattern=REPO_ID)
    """Hub model repo id `owner/name` to push to. Leave out to keep the result on the backend only."""
    private: bool = True
    """Create the repo as private."""
    merge_adapter: bool = False
    """Push the merged full model instead of the LoRA adapter."""
    gguf: list[GGUFQuant] | None = Field(default=None, max_length=9)
    """GGUF files to build and push (e.g. [Q4_K_M, Q8_0]); needs `repo`."""
    gguf_repo: str | None = Field(default=None, pattern=REPO_ID)
    """Repo for the GGUF files (default `<repo>-GGUF`)."""


class SecretKeyRef(CamelModel):
    """A key of a Secret in the FineTuneJob's namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """Secret name."""
    key: str = Field(default="token", min_length=1, max_length=253)
    """Key in the Secret holding the Hugging Face token."""


class FineTuneJobSpec(CamelModel):
    """The desired fine-tuning run. Fields that define the training are immutable once set."""

    model: ModelSpec
    """Base model to fine-tune."""
    dataset: DatasetSource
    """Training data, validated against the method before any hardware is planned."""
    method: Method
    """Training method: SFT (demonstrations), DPO (preference pairs) or GRPO (prompts + reward functions)."""
    peft: PeftMode = PeftMode.AUTO
    """Auto turns on LoRA where full fine-tuning does not fit, and QLoRA where LoRA does not."""
    lora: LoraSettings | None = None
    """LoRA settings (with LoRA, QLoRA or an Auto that resolves to them)."""
    hyperparameters: HyperparametersSpec | None = None
    """Training settings; every field optional."""
    rewards: list[RewardSpec] | None = Field(default=None, max_length=16)
    """GRPO reward functions (default: Accuracy on the `answer` column)."""
    evaluation: Evaluation | None = None
    """Held-out evaluation before, during and after training, with optional gates on pushing."""
    backend: Backend = Backend.AUTO
    """Where the training runs."""
    hardware: HardwareSpec | None = None
    """Hardware request; leave out for Auto."""
    queue: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    """Kueue LocalQueue (in this namespace) the training Job waits in for GPU quota (Kubernetes backend).
    Default: the installation's `default_queue`; none: the Job starts at once."""
    budget: BudgetSpec | None = None
    """Cost and time limits (may change after submission)."""
    output: OutputSpec | None = None
    """Where the model (and GGUF files) go."""
    token_secret_ref: SecretKeyRef | None = None
    """Secret holding a Hugging Face token (needed for HFJobs, private data and pushes)."""
    suspend: bool = False
    """True: validate, plan and estimate only; flip to false to launch."""

    @field_validator("rewards")
    @classmethod
    def _rewards_named(cls, rewards: list[RewardSpec] | None) -> list[RewardSpec] | None:
        for reward in rewards or []:
            if reward.type == "Python" and not (reward.function or reward.code):
                raise ValueError("a `Python` reward needs `function` (module:function) or `code`")
        total = sum(len(reward.code or "") for reward in rewards or [])
        if total > MAX_REWARD_CODE_TOTAL:
            raise ValueError(
                f"`spec.rewards[].code` holds {total} characters in all, over {MAX_REWARD_CODE_TOTAL}: "
                "move long reward code into a module in the trainer image and name it in `function`"
            )
        return rewards

    def gguf_repo(self) -> str | None:
        """Where GGUF files go: the explicit repo, else `<repo>-GGUF`."""
        out = self.output
        if not out or not out.gguf or not out.repo:
            return None
        return out.gguf_repo or f"{out.repo}-GGUF"


def parse_duration_seconds(text: str) -> int:
    """Seconds in a duration such as `90m` or `1h30m`."""
    units = {"s": 1, "m": 60, "h": 3600}
    return int(sum(float(n) * units[u] for n, _, u in re.findall(r"([0-9]+(\.[0-9]+)?)(s|m|h)", text)))
