"""The training plan: the one contract between the operator (which renders it) and the runtime.

`ftjob train --plan plan.json` reads nothing else but the environment (the HF token arrives as the
`HF_TOKEN` environment variable or secret, never in the plan).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field

from finetune_training.camel import CamelModel


class Method(StrEnum):
    """The TRL trainer that runs the job."""

    SFT = "SFT"
    DPO = "DPO"
    GRPO = "GRPO"
    KTO = "KTO"


class PeftMode(StrEnum):
    """How the weights are trained. `Auto` is resolved by the planner before a plan is rendered."""

    AUTO = "Auto"
    LORA = "LoRA"
    QLORA = "QLoRA"
    NONE = "None"


def load_dtype(peft: PeftMode, bf16: bool) -> str:
    """The dtype the base model (and a reference copy) is loaded in: the runtime loads it so, and the
    planner's memory model charges it so (one decision, two readers).

    Full fine-tuning keeps fp32 master weights (bf16 runs compute under autocast, so the optimizer updates
    fp32); LoRA's frozen weights need no master copy, so they are bf16 where the GPU computes in bf16; QLoRA
    stores NF4 and computes in bf16 (fp16 without it).
    """
    if peft == PeftMode.QLORA:
        return "bfloat16" if bf16 else "float16"
    if peft == PeftMode.LORA and bf16:
        return "bfloat16"
    return "float32"


DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


class Conversion(StrEnum):
    """A named conversion of a whole row into a TRL format, applied before the column renames."""

    ALPACA = "Alpaca"
    """instruction/input/output (optionally system, history) into conversational prompt/completion."""
    SHAREGPT = "ShareGPT"
    """conversations [{from, value}] (human/gpt/system/function_call/observation) into messages."""
    SHAREGPT_PREFERENCE = "ShareGPTPreference"
    """conversations + chosen/rejected turns as {from, value} objects into prompt/chosen/rejected."""
    CONTENT_PARTS = "ContentParts"
    """messages whose content is a list of parts [{type: text, value|text}] into plain strings."""
    MESSAGE_PAIRS = "MessagePairs"
    """chosen_messages/rejected_messages full conversations into prompt/chosen/rejected."""
    QUESTION_ANSWER = "QuestionAnswer"
    """question/answer into a conversational prompt plus the reference `answer` for rewards."""


class ColumnMapping(CamelModel):
    """Which dataset column feeds each column TRL expects (target: source). Unset targets keep their name."""

    messages: str | None = None
    """Column holding a conversation as a list of {role, content} turns."""
    prompt: str | None = None
    """Column holding the prompt (a string or a list of turns)."""
    completion: str | None = None
    """Column holding the completion for prompt/completion SFT."""
    text: str | None = None
    """Column holding plain text (language modelling)."""
    chosen: str | None = None
    """Column holding the preferred response (DPO)."""
    rejected: str | None = None
    """Column holding the dispreferred response (DPO)."""
    answer: str | None = None
    """Column holding the reference answer used by GRPO's accuracy reward."""
    tools: str | None = None
    """Column holding tool definitions (a list or a JSON string) for tool-calling conversations."""

    def renames(self) -> dict[str, str]:
        """Source column -> target column, for the columns that change name."""
        return {src: dst for dst, src in self.model_dump(exclude_none=True).items() if src != dst}


class DatasetSource(CamelModel):
    """Where the training data comes from and how it maps onto the method's format."""

    name: str = Field(min_length=1, max_length=512)
    """Hub dataset repo id (`owner/name`) or a local file or folder (JSON, JSONL, Parquet, CSV)."""
    config: str | None = Field(default=None, max_length=128)
    """Dataset configuration (subset) name, for Hub datasets that have several."""
    split: str = Field(default="train", min_length=1, max_length=128)
    """Split to train on. A split that does not exist is an error, never a silent fallback."""
    revision: str | None = Field(default=None, max_length=256)
    """Hub revision (branch, tag or commit) of the dataset."""
    conversion: Conversion | None = None
    """A named whole-row conversion (as `ftjob validate` suggests), applied before `columns`."""
    columns: ColumnMapping | None = None
    """Column renames onto TRL's expected names (as `ftjob validate` suggests)."""


class LoraSettings(CamelModel):
    """LoRA adapter settings (used by LoRA and QLoRA)."""

    r: int = Field(default=16, ge=1, le=1024)
    """Adapter rank. 16 is a robust default for instruction tuning."""
    alpha: int = Field(default=32, ge=1, le=4096)
    """Scaling numerator (effective scale alpha/r). Twice the rank is the common choice."""
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    """Dropout on the adapter input."""
    target_modules: list[str] = Field(default_factory=lambda: ["all-linear"], max_length=64)
    """Modules to adapt. `all-linear` (every linear layer but the output head) matches QLoRA's paper."""


class RewardType(StrEnum):
    """A GRPO reward function."""

    ACCURACY = "Accuracy"
    """1.0 when the final answer extracted from the completion equals the reference answer (GSM8K `#### N`,
    `\\boxed{}`, or the last number), else 0.0."""
    FORMAT = "Format"
    """1.0 when the completion follows a `<think>…</think><answer>…</answer>`-style tag format."""
    LENGTH = "Length"
    """Penalises completions far from `targetLength` characters; 1.0 at the target."""
    PYTHON = "Python"
    """A user function `f(completions, prompts, **columns) -> list[float]` from `function` or `code`."""


MAX_REWARD_CODE = 16 * 1024
"""Characters of inline reward `code` per reward; with :data:`MAX_REWARD_CODE_TOTAL` over all rewards,
this keeps the FineTuneJob (which kopf copies whole into an annotation) far below etcd's object limit."""
MAX_REWARD_CODE_TOTAL = 32 * 1024


class RewardSpec(CamelModel):
    """One GRPO reward function and its weight."""

    type: RewardType
    """Which reward function."""
    weight: float = Field(default=1.0, ge=-100.0, le=100.0)
    """Weight of this reward in the sum GRPO optimises."""
    answer_column: str | None = Field(default=None, max_length=128)
    """Column with the reference answer (Accuracy). Defaults to `answer`."""
    target_length: int | None = Field(default=None, ge=1, le=100000)
    """Target completion length in characters (Length)."""
    tags: list[str] | None = Field(default=None, max_length=8)
    """Tags the completion must use, in order (Format). Defaults to think, answer."""
    function: str | None = Field(default=None, max_length=256)
    """`module:function` importable in the trainer (Python)."""
    code: str | None = Field(default=None, max_length=MAX_REWARD_CODE)
    """Inline Python source defining `function`'s name, or `reward` by default (Python)."""


class Hyperparameters(CamelModel):
    """Training settings, resolved (every field set) by the operator from the spec and method defaults."""

    epochs: float = Field(default=1.0, gt=0, le=1000)
    max_steps: int = Field(default=-1, ge=-1)
    learning_rate: float = Field(default=2e-4, gt=0, le=1)
    max_length: int = Field(default=1024, ge=16, le=1048576)
    per_device_batch_size: int = Field(default=4, ge=1, le=4096)
    gradient_accumulation_steps: int = Field(default=4, ge=1, le=4096)
    warmup_ratio: float = Field(default=0.03, ge=0, le=1)
    weight_decay: float = Field(default=0.0, ge=0, le=10)
    lr_scheduler: str = "cosine"
    seed: int = 42
    packing: bool = True
    gradient_checkpointing: bool = True
    logging_steps: int = Field(default=10, ge=1)
    save_steps: int = Field(default=200, ge=1)
    beta: float | None = None
    num_generations: int | None = None
    max_completion_length: int | None = None
    bf16: bool | None = None
    """None: bf16 where the GPU supports it, fp32 on CPU."""
    extra_args: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """Passed through to the TRL config as they are (snake_case TRL names)."""


class Evaluation(CamelModel):
    """Held-out evaluation: before training (the base model's score), every `steps` and at the end.

    The rows come from `split` of the same dataset, else a `fraction` of the training rows held out
    (deterministic by the seed, and never trained on).
    """

    split: str | None = Field(default=None, min_length=1, max_length=128)
    """A split of the same dataset to evaluate on (e.g. `test`). Unset: hold out `fraction` of the rows."""
    fraction: float = Field(default=0.05, gt=0, le=0.5)
    """Share of the training rows held out when no `split` is named."""
    max_rows: int = Field(default=500, ge=1, le=100_000)
    """At most this many evaluation rows (evaluation time stays small next to training)."""
    steps: int | None = Field(default=None, ge=1)
    """Evaluate every this many steps (default: at each checkpoint, `saveSteps`)."""
    max_loss: float | None = Field(default=None, gt=0)
    """Gate: a final evaluation loss above this is not pushed (the job fails `EvaluationGateFailed`)."""
    min_improvement: float | None = Field(default=None, ge=0, lt=1)
    """Gate: the final evaluation loss must be at least this share below the base model's (0.1: 10%)."""


class GGUFQuant(StrEnum):
    """A llama.cpp GGUF file type."""

    F16 = "F16"
    Q8_0 = "Q8_0"
    Q6_K = "Q6_K"
    Q5_K_M = "Q5_K_M"
    Q5_0 = "Q5_0"
    Q4_K_M = "Q4_K_M"
    Q4_0 = "Q4_0"
    Q3_K_M = "Q3_K_M"
    Q2_K = "Q2_K"


class PlanOutput(CamelModel):
    """Where the result goes."""

    repo: str | None = None
    """Hub repo id for the model (adapter or merged). None: keep it in `localDir` only."""
    private: bool = True
    merge_adapter: bool = False
    """Push the merged full model instead of the LoRA adapter."""
    gguf: list[GGUFQuant] = Field(default_factory=list)
    gguf_repo: str | None = None
    """Defaults to `<repo>-GGUF`."""
    push_checkpoints: bool = True
    """Push checkpoints to a `checkpoints` branch of `repo` as training goes, for resuming."""
    local_dir: str = "outputs"
    """Working folder for checkpoints and the final model."""


class Tracking(CamelModel):
    """trackio run identity."""

    project: str
    run_name: str
    """Unique per attempt (trackio appends to a run of the same name)."""
    space_id: str | None = None
    """A trackio Space to sync to; None keeps the local store only."""


class Resources(CamelModel):
    """What the run has, so the runtime can configure accelerate."""

    gpu_count: int = 0
    """GPUs per node (each node's pod requests this many)."""
    gpu_product: str | None = None
    flavor: str | None = None
    """The HF Jobs flavor, when the run is an HF Job."""
    nodes: int = Field(default=1, ge=1)
    """Machines the run spans; above 1, each node's pod joins the others through torchrun's rendezvous."""

    @property
    def processes_per_node(self) -> int:
        """One training process per GPU, or one on a machine without GPUs."""
        return max(self.gpu_count, 1)

    @property
    def world_size(self) -> int:
        """Every training process of the run, on every node."""
        return self.nodes * self.processes_per_node


class JobIdentity(CamelModel):
    """The FineTuneJob this plan belongs to (for model cards, labels and run names)."""

    namespace: str = "default"
    name: str
    uid: str = ""
    attempt: int = 1


class TrainingPlan(CamelModel):
    """Everything a training run needs, rendered by the operator (or `ftjob plan`) and read by the runtime."""

    api_version: str = "finetune.dev/v1alpha1"
    kind: str = "TrainingPlan"
    job: JobIdentity
    model: str
    """Base model: Hub repo id or local folder."""
    model_revision: str | None = None
    dataset: DatasetSource
    method: Method
    peft: PeftMode
    lora: LoraSettings = Field(default_factory=LoraSettings)
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    rewards: list[RewardSpec] = Field(default_factory=list)
    evaluation: Evaluation | None = None
    """Held-out evaluation; None trains without one."""
    output: PlanOutput = Field(default_factory=PlanOutput)
    tracking: Tracking
    resources: Resources = Field(default_factory=Resources)
    finetune_job_yaml: str | None = None
    """The FineTuneJob as applied (spec only), embedded in the model card."""

    @classmethod
    def load(cls, path: str | Path) -> TrainingPlan:
        """Read a plan file written by :meth:`dump`."""
        return cls.model_validate_json(Path(path).read_text())

    def dump(self, path: str | Path) -> None:
        """Write the plan as JSON."""
        Path(path).write_text(self.model_dump_json(by_alias=True, exclude_none=True, indent=2))
