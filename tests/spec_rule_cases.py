"""For each rule of `finetune_operator.api.rules`, a spec that breaks it and one that satisfies it (as the API
carries them: camelCase). The unit tests run the Python predicates on them, the admission tests the CEL
the CRD carries, on the real API server."""

from __future__ import annotations

import copy
import enum
import types
import typing
from typing import Any

from pydantic import BaseModel

BASE: dict[str, Any] = {
    "model": {"name": "Qwen/Qwen3-0.6B"},
    "dataset": {"name": "my-org/chats"},
    "method": "SFT",
}
GGUF = {"repo": "my-org/bot", "gguf": ["Q4_K_M"]}

# rule name -> (changes that break it, changes that satisfy it), each merged over BASE.
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "reward-code-total": (
        {"method": "GRPO", "rewards": [{"type": "Python", "code": "#" * 16000} for _ in range(3)]},
        {"method": "GRPO", "rewards": [{"type": "Python", "code": "#" * 16000} for _ in range(2)]},
    ),
    "rewards-need-grpo": ({"rewards": [{"type": "Accuracy"}]}, {"method": "GRPO", "rewards": [{"type": "Accuracy"}]}),
    "flavor-needs-hfjobs": (
        {"hardware": {"flavor": "a10g-large"}},
        {"backend": "HFJobs", "hardware": {"flavor": "a10g-large"}},
    ),
    "nodes-need-kubernetes": (
        {"backend": "HFJobs", "hardware": {"nodes": 2}},
        {"backend": "Kubernetes", "hardware": {"nodes": 2}},
    ),
    "queue-needs-kubernetes": ({"backend": "Local", "queue": "team-a"}, {"backend": "Kubernetes", "queue": "team-a"}),
    "flavor-or-gpus": (
        {"backend": "HFJobs", "hardware": {"flavor": "a10g-large", "gpuCount": 2}},
        {"backend": "HFJobs", "hardware": {"flavor": "a10g-large"}},
    ),
    "gpus-not-on-hfjobs": (
        {"backend": "HFJobs", "hardware": {"gpuCount": 2}},
        {"backend": "Kubernetes", "hardware": {"gpuCount": 2}},
    ),
    "gguf-needs-repo": ({"output": {"gguf": ["Q4_K_M"]}}, {"output": GGUF}),
    "gguf-repo-needs-gguf": (
        {"output": {"repo": "my-org/bot", "ggufRepo": "my-org/bot-gguf"}},
        {"output": {**GGUF, "ggufRepo": "my-org/bot-gguf"}},
    ),
    "lora-needs-peft": ({"peft": "None", "lora": {"r": 8}}, {"peft": "LoRA", "lora": {"r": 8}}),
    "grpo-settings-need-grpo": (
        {"hyperparameters": {"numGenerations": 4}},
        {"method": "GRPO", "hyperparameters": {"numGenerations": 4}},
    ),
    "packing-needs-sft": (
        {"method": "DPO", "hyperparameters": {"packing": True}},
        {"hyperparameters": {"packing": True}},
    ),
    "beta-not-on-sft": ({"hyperparameters": {"beta": 0.1}}, {"method": "DPO", "hyperparameters": {"beta": 0.1}}),
    "grpo-batch-multiple-of-generations": (
        {"method": "GRPO", "hyperparameters": {"perDeviceBatchSize": 3}},
        {
            "method": "GRPO",
            "hyperparameters": {"perDeviceBatchSize": 3, "gradientAccumulationSteps": 8, "numGenerations": 6},
        },
    ),
    "no-loss-gates-on-generating-methods": (
        {"method": "GRPO", "evaluation": {"maxLoss": 1.0}},
        {"method": "DPO", "evaluation": {"maxLoss": 1.0, "minImprovement": 0.1}},
    ),
    "model-name": ({"model": {"name": " "}}, {"model": {"name": "./models/qwen"}}),
    "dataset-name": ({"dataset": {"name": "a//b"}}, {"dataset": {"name": "chats"}}),
    "output-repo": ({"output": {"repo": "just-a-name"}}, {"output": {"repo": "my-org/bot"}}),
    "gguf-repo": ({"output": {**GGUF, "ggufRepo": "nope"}}, {"output": {**GGUF, "ggufRepo": "my-org/q"}}),
    "timeout-duration": ({"budget": {"timeout": "four hours"}}, {"budget": {"timeout": "1h30m"}}),
    "python-reward-needs-code": (
        {"method": "GRPO", "rewards": [{"type": "Python"}]},
        {"method": "GRPO", "rewards": [{"type": "Python", "function": "rewards:score"}]},
    ),
    "code-only-on-python-rewards": (
        {"method": "GRPO", "rewards": [{"type": "Accuracy", "code": "def f(): pass"}]},
        {"method": "GRPO", "rewards": [{"type": "Accuracy"}, {"type": "Python", "code": "def f(): pass"}]},
    ),
}  # fmt: skip


def body(changes: dict[str, Any]) -> dict[str, Any]:
    """BASE with `changes` (top-level keys replaced)."""
    return copy.deepcopy({**BASE, **changes})


def unchecked(cls: type[BaseModel], data: dict[str, Any]) -> Any:
    """`cls` built from camelCase `data` without validation (nested models and enums converted): the spec
    a Python predicate sees when pydantic's own field constraints would refuse it first."""
    values: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        key = field.alias or name
        if key in data or name in data:
            values[name] = _convert(field.annotation, data.get(key, data.get(name)))
    return cls.model_construct(**values)


def _convert(annotation: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if origin is list:
        (item,) = typing.get_args(annotation)
        return [_convert(item, v) for v in value]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return unchecked(annotation, value)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation(value)
    return value
