"""The FineTuneJob spec's rules that a JSON schema cannot say, in one table.

Each rule has the CEL expression the CRD carries (`x-kubernetes-validations`, so the API server refuses a
spec that breaks it), the message (what to change), where it is attached, and the same check in Python
over the pydantic spec. The CRD generator (`api.crd`) emits the CEL from this table; the planner
(`planning.policy.make_plan`, which the operator and `ftjob plan` both run) raises the same message, so
`ftjob plan` refuses what the cluster refuses and an object admitted before a rule existed is refused
with the words the API server would use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from finetune_operator.api.spec import DURATION, REPO_ID, Backend, FineTuneJobSpec, HyperparametersSpec
from finetune_operator.errors import SpecError
from finetune_training.plan import MAX_REWARD_CODE_TOTAL, Hyperparameters, Method, PeftMode, RewardType
from finetune_training.profiles import PROFILES


def _cel_literal(pattern: str) -> str:
    """A regex as a CEL single-quoted string literal (backslashes escaped)."""
    return pattern.replace("\\", "\\\\")


# A Hub id (`owner/name`, or a legacy bare `name`) or a local path (`/…`, `./…`): anything else (blank, spaces,
# `a//b`) passed admission before, and then the Hub client's HFValidationError failed every reconcile.
HUB_ID_OR_PATH = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$|^[.]{0,2}/.*[^ ]$"


@dataclass(frozen=True)
class SpecRule:
    """One rule of the spec, both ways: CEL for the API server, a predicate for Python."""

    name: str
    """A short id (tests and docs)."""
    cel: str
    """The CEL expression; `self` is the node at `at`. True when the spec satisfies the rule."""
    message: str
    """What is wrong and what to change, naming the field."""
    holds: Callable[[FineTuneJobSpec], bool]
    """The same check in Python, over the whole parsed spec: True when it satisfies the rule."""
    at: tuple[str, ...] = ()
    """Where the CEL is attached, as property names below `spec` (`[]`: each item of a list)."""
    field_path: str | None = None
    """The field the API server names in its refusal, relative to `at` (`.hardware.flavor`)."""
    reason: str = "InvalidSpec"
    """The reason Python gives (the condition's reason, and `ftjob plan`'s exit code)."""

    @property
    def path(self) -> str:
        """The field the message is about, from `spec` (`spec.hardware.flavor`, `spec.rewards[]`)."""
        node = "".join("[]" if part == "[]" else f".{part}" for part in self.at)
        return f"spec{node}{self.field_path or ''}"

    def as_cel(self) -> dict[str, str]:
        """The rule as an `x-kubernetes-validations` entry."""
        out = {"rule": self.cel, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


def _hp(spec: FineTuneJobSpec) -> HyperparametersSpec:
    return spec.hyperparameters or HyperparametersSpec()


def _method_default(method: Method, name: str) -> Any:
    """What the method uses for a hyperparameter nobody set: the profile's default, else the common one."""
    own = PROFILES[method].default(name)
    return own if own is not None else Hyperparameters.model_fields[name].default


def _grpo_batch_fits(spec: FineTuneJobSpec) -> bool:
    hp = _hp(spec)
    if spec.method != Method.GRPO or hp.per_device_batch_size is None:
        return True
    accum = hp.gradient_accumulation_steps or _method_default(Method.GRPO, "gradient_accumulation_steps")
    gens = hp.num_generations or _method_default(Method.GRPO, "num_generations")
    return bool((hp.per_device_batch_size * accum) % gens == 0)


GRPO_ACCUMULATION = _method_default(Method.GRPO, "gradient_accumulation_steps")
GRPO_GENERATIONS = _method_default(Method.GRPO, "num_generations")
GENERATING_METHODS = [m.value for m, p in PROFILES.items() if p.generates]


def _matches(pattern: str, value: str | None) -> bool:
    return value is None or re.search(pattern, value) is not None


SPEC_RULES: tuple[SpecRule, ...] = (
    # ---- on `spec` --------------------------------------------------------------------------------------
    SpecRule(
        name="reward-code-total",
        cel="!has(self.rewards) || "
        f"self.rewards.map(r, has(r.code) ? size(r.code) : 0).sum() <= {MAX_REWARD_CODE_TOTAL}",
        message=f"`spec.rewards[].code` may hold {MAX_REWARD_CODE_TOTAL} characters in all: move long "
        "reward code into a module in the trainer image and name it in `function`",
        holds=lambda s: sum(len(r.code or "") for r in s.rewards or []) <= MAX_REWARD_CODE_TOTAL,
        field_path=".rewards",
    ),
    SpecRule(
        name="rewards-need-grpo",
        cel="!has(self.rewards) || self.method == 'GRPO'",
        message="`spec.rewards` is only used by `method: GRPO`: remove it, or set `method: GRPO`",
        holds=lambda s: s.rewards is None or s.method == Method.GRPO,
        field_path=".rewards",
    ),
    SpecRule(
        name="flavor-needs-hfjobs",
        cel="!has(self.hardware) || !has(self.hardware.flavor) || self.backend == 'HFJobs'",
        message="`spec.hardware.flavor` names a Hugging Face Jobs flavor: set `backend: HFJobs`, "
        "or request in-cluster GPUs with `hardware.gpuCount`/`gpuProduct`",
        holds=lambda s: not (s.hardware and s.hardware.flavor) or s.backend == Backend.HF_JOBS,
        field_path=".hardware.flavor",
        reason="HardwareInvalid",
    ),
    SpecRule(
        name="nodes-need-kubernetes",
        cel="!has(self.hardware) || !has(self.hardware.nodes) || self.hardware.nodes == 1 || "
        "self.backend in ['Kubernetes', 'Auto']",
        message="`spec.hardware.nodes` spreads a run over in-cluster nodes: set `backend: Kubernetes` (or Auto), "
        "or remove `nodes`",
        holds=lambda s: (
            not (s.hardware and s.hardware.nodes and s.hardware.nodes > 1)
            or s.backend in (Backend.KUBERNETES, Backend.AUTO)
        ),
        field_path=".hardware.nodes",
        reason="HardwareInvalid",
    ),
    SpecRule(
        name="queue-needs-kubernetes",
        cel="!has(self.queue) || self.backend in ['Kubernetes', 'Auto']",
        message="`spec.queue` names a Kueue LocalQueue for in-cluster training Jobs: set `backend: Kubernetes` "
        "(or Auto), or remove `queue`",
        holds=lambda s: s.queue is None or s.backend in (Backend.KUBERNETES, Backend.AUTO),
        field_path=".queue",
        reason="HardwareInvalid",
    ),
    SpecRule(
        name="flavor-or-gpus",
        cel="!has(self.hardware) || !has(self.hardware.flavor) || "
        "!(has(self.hardware.gpuCount) || has(self.hardware.gpuProduct))",
        message="`spec.hardware` takes either `flavor` (HF Jobs) or `gpuCount`/`gpuProduct` (in-cluster), "
        "not both: remove one",
        holds=lambda s: (
            not (
                s.hardware
                and s.hardware.flavor is not None
                and (s.hardware.gpu_count is not None or s.hardware.gpu_product is not None)
            )
        ),
        field_path=".hardware",
        reason="HardwareInvalid",
    ),
    SpecRule(
        name="gpus-not-on-hfjobs",
        cel="!has(self.hardware) || !(has(self.hardware.gpuCount) || has(self.hardware.gpuProduct)) "
        "|| self.backend != 'HFJobs'",
        message="`spec.hardware.gpuCount`/`gpuProduct` request in-cluster GPUs: with `backend: HFJobs` "
        "use `hardware.flavor` instead",
        holds=lambda s: (
            not (s.hardware and (s.hardware.gpu_count is not None or s.hardware.gpu_product is not None))
            or s.backend != Backend.HF_JOBS
        ),
        field_path=".hardware",
        reason="HardwareInvalid",
    ),
    SpecRule(
        name="gguf-needs-repo",
        cel="!has(self.output) || !has(self.output.gguf) || size(self.output.gguf) == 0 "
        "|| has(self.output.repo)",
        message="`spec.output.gguf` needs `spec.output.repo` (the GGUF files go to `<repo>-GGUF`): "
        "set `output.repo: owner/name`",
        holds=lambda s: not (s.output and s.output.gguf) or s.output.repo is not None,
        field_path=".output.gguf",
    ),
    SpecRule(
        name="gguf-repo-needs-gguf",
        cel="!has(self.output) || !has(self.output.ggufRepo) || has(self.output.gguf)",
        message="`spec.output.ggufRepo` is only used with `spec.output.gguf`: list the quantizations "
        "(e.g. `gguf: [Q4_K_M]`) or remove it",
        holds=lambda s: not (s.output and s.output.gguf_repo is not None) or s.output.gguf is not None,
        field_path=".output.ggufRepo",
    ),
    SpecRule(
        name="lora-needs-peft",
        cel="!has(self.lora) || self.peft != 'None'",
        message="`spec.lora` has no effect with `peft: None`: remove it, or set `peft: LoRA`",
        holds=lambda s: s.lora is None or s.peft != PeftMode.NONE,
        field_path=".lora",
    ),
    # Fields one method reads are refused on the others, so a typo'd method shows (`own_fields` of the
    # method profiles; a test checks that every profile's own fields have a rule here).
    SpecRule(
        name="grpo-settings-need-grpo",
        cel="!has(self.hyperparameters) || !(has(self.hyperparameters.numGenerations) "
        "|| has(self.hyperparameters.maxCompletionLength)) || self.method == 'GRPO'",
        message="`spec.hyperparameters.numGenerations` and `maxCompletionLength` are GRPO settings: "
        "remove them, or set `method: GRPO`",
        holds=lambda s: (
            s.method == Method.GRPO
            or (_hp(s).num_generations is None and _hp(s).max_completion_length is None)
        ),
        field_path=".hyperparameters",
        reason="HyperparametersInvalid",
    ),
    SpecRule(
        name="packing-needs-sft",
        cel="!has(self.hyperparameters) || !has(self.hyperparameters.packing) || self.method == 'SFT'",
        message="`spec.hyperparameters.packing` only applies to `method: SFT`: remove it",
        holds=lambda s: _hp(s).packing is None or s.method == Method.SFT,
        field_path=".hyperparameters.packing",
        reason="HyperparametersInvalid",
    ),
    SpecRule(
        name="beta-not-on-sft",
        cel="!has(self.hyperparameters) || !has(self.hyperparameters.beta) || self.method != 'SFT'",
        message="`spec.hyperparameters.beta` is a DPO/GRPO setting: remove it for `method: SFT`",
        holds=lambda s: _hp(s).beta is None or s.method != Method.SFT,
        field_path=".hyperparameters.beta",
        reason="HyperparametersInvalid",
    ),
    SpecRule(
        name="grpo-batch-multiple-of-generations",
        cel="self.method != 'GRPO' || !has(self.hyperparameters) "
        "|| !has(self.hyperparameters.perDeviceBatchSize) "
        "|| (self.hyperparameters.perDeviceBatchSize * (has(self.hyperparameters.gradientAccumulationSteps) "
        f"? self.hyperparameters.gradientAccumulationSteps : {GRPO_ACCUMULATION})) "
        "% (has(self.hyperparameters.numGenerations) "
        f"? self.hyperparameters.numGenerations : {GRPO_GENERATIONS}) == 0",
        message="GRPO needs `spec.hyperparameters.perDeviceBatchSize` x `gradientAccumulationSteps` "
        f"(default {GRPO_ACCUMULATION}) to be a multiple of `numGenerations` (default {GRPO_GENERATIONS}): "
        "change one of them",
        holds=_grpo_batch_fits,
        field_path=".hyperparameters",
        reason="HyperparametersInvalid",
    ),
    SpecRule(
        name="no-loss-gates-on-generating-methods",
        cel="!has(self.evaluation) || !(has(self.evaluation.maxLoss) || has(self.evaluation.minImprovement)) "
        f"|| !(self.method in {GENERATING_METHODS!r})".replace('"', "'"),
        message="`evaluation.maxLoss` and `evaluation.minImprovement` compare losses, and "
        f"{'/'.join(GENERATING_METHODS)}'s loss says little about the model: remove them (its held-out "
        "reward is still reported)",
        holds=lambda s: (
            not PROFILES[s.method].generates
            or s.evaluation is None
            or (s.evaluation.max_loss is None and s.evaluation.min_improvement is None)
        ),
        field_path=".evaluation",
        reason="EvaluationInvalid",
    ),
    # ---- on sub-objects ---------------------------------------------------------------------------------
    SpecRule(
        name="model-name",
        at=("model",),
        cel=f"self.name.matches('{_cel_literal(HUB_ID_OR_PATH)}')",
        message="`spec.model.name` must be a Hub repo id `owner/name` (letters, digits, `.`, `_`, `-`) "
        "or a local path starting with `/` or `./`",
        holds=lambda s: _matches(HUB_ID_OR_PATH, s.model.name),
        field_path=".name",
        reason="ModelInvalid",
    ),
    SpecRule(
        name="dataset-name",
        at=("dataset",),
        cel=f"self.name.matches('{_cel_literal(HUB_ID_OR_PATH)}')",
        message="`spec.dataset.name` must be a Hub repo id `owner/name` (letters, digits, `.`, `_`, `-`) "
        "or a local path starting with `/` or `./`",
        holds=lambda s: _matches(HUB_ID_OR_PATH, s.dataset.name),
        field_path=".name",
    ),
    SpecRule(
        name="output-repo",
        at=("output",),
        cel=f"!has(self.repo) || self.repo.matches('{_cel_literal(REPO_ID)}')",
        message="`spec.output.repo` must be a Hub repo id `owner/name` (letters, digits, `.`, `_`, `-`)",
        holds=lambda s: s.output is None or _matches(REPO_ID, s.output.repo),
        field_path=".repo",
    ),
    SpecRule(
        name="gguf-repo",
        at=("output",),
        cel=f"!has(self.ggufRepo) || self.ggufRepo.matches('{_cel_literal(REPO_ID)}')",
        message="`spec.output.ggufRepo` must be a Hub repo id `owner/name`",
        holds=lambda s: s.output is None or _matches(REPO_ID, s.output.gguf_repo),
        field_path=".ggufRepo",
    ),
    SpecRule(
        name="timeout-duration",
        at=("budget",),
        cel=f"!has(self.timeout) || self.timeout.matches('{_cel_literal(DURATION)}')",
        message="`spec.budget.timeout` must be a duration such as `90m`, `4h` or `1h30m`",
        holds=lambda s: s.budget is None or _matches(DURATION, s.budget.timeout),
        field_path=".timeout",
    ),
    SpecRule(
        name="python-reward-needs-code",
        at=("rewards", "[]"),
        cel="self.type != 'Python' || has(self.function) || has(self.code)",
        message="a `Python` reward needs `function` (`module:function`) or inline `code`",
        holds=lambda s: all(
            r.type != RewardType.PYTHON or r.function is not None or r.code is not None
            for r in s.rewards or []
        ),
    ),
    SpecRule(
        name="code-only-on-python-rewards",
        at=("rewards", "[]"),
        cel="self.type == 'Python' || !(has(self.function) || has(self.code))",
        message="`function` and `code` only apply to `type: Python` rewards: remove them",
        holds=lambda s: all(
            r.type == RewardType.PYTHON or (r.function is None and r.code is None) for r in s.rewards or []
        ),
    ),
)


def rules_at(path: tuple[str, ...]) -> list[SpecRule]:
    """The rules attached at `path` below `spec`, in table order."""
    return [rule for rule in SPEC_RULES if rule.at == path]


def violations(spec: FineTuneJobSpec) -> Iterator[SpecRule]:
    """The rules `spec` breaks, in table order."""
    return (rule for rule in SPEC_RULES if not rule.holds(spec))


def check_spec(spec: FineTuneJobSpec) -> None:
    """Refuse a spec the API server would refuse, with the API server's message.

    Raises
    ------
    SpecError
        For the first rule broken: the rule's reason and message.
    """
    for rule in violations(spec):
        raise SpecError(rule.reason, rule.message)
