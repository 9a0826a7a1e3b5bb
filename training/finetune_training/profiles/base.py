"""What a training method is, in one torch-free record: the validator, the planner, the runtime and the model
card all read it from here, so a method's facts live in one module (see the package docstring)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from finetune_training.plan import Method


def row_kind(row: Mapping[str, Any]) -> str:
    """The TRL dataset format of a mapped row: preference, messages, prompt-completion, prompt-only or text."""
    if "chosen" in row and "rejected" in row:
        return "preference"
    if "messages" in row:
        return "messages"
    if "prompt" in row and "completion" in row:
        return "prompt-completion"
    if "prompt" in row:
        return "prompt-only"
    if "text" in row:
        return "text"
    return "none"


@dataclass(frozen=True)
class MethodProfile:
    """One training method as every part of the product sees it.

    Learning rates and defaults are what an experienced practitioner picks for the method (the sources are
    in each method's module); the planner layers its own choices and then the user's settings on top.
    """

    method: Method
    title: str
    """How the model card names it: "supervised fine-tuning (SFT)"."""
    tag: str
    """The Hub tag on the pushed model."""
    needs: str
    """What the rows must hold, in the words of a validation message."""
    trl_columns: tuple[str, ...]
    """The columns the TRL trainer reads after mapping; the runtime drops the others."""
    accepts: Callable[[Mapping[str, Any]], bool]
    """Whether one mapped row has this method's format."""
    learning_rate_full: float
    learning_rate_adapter: float
    """Learning rate with LoRA/QLoRA: a few million fresh parameters want ~10x the full rate."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """The method's own `Hyperparameters` defaults (snake_case), on top of the common ones."""
    own_fields: tuple[str, ...] = ()
    """`Hyperparameters` fields only this method reads (others refuse them, naming the method)."""
    sequences_per_row: int = 1
    """Sequences the trainer forwards per dataset row (DPO: chosen and rejected)."""
    generates: bool = False
    """Samples completions while training (memory for a KV cache, time for generation)."""
    reference_model: str = "never"
    """`always`, `never`, or `when_beta` (only with a KL term, beta > 0): a frozen copy for the loss."""
    builder: str = ""
    """`module:function` that builds the TRL trainer; imported only when training (it needs torch)."""

    def default(self, name: str) -> Any:
        """The method's default for one hyperparameter (None when it has none)."""
        return self.defaults.get(name)

    def needs_reference(self, beta: float | None) -> bool:
        """Whether training holds a reference copy of the model."""
        if self.reference_model == "when_beta":
            return (beta if beta is not None else self.default("beta") or 0.0) > 0
        return self.reference_model == "always"

    def missing(self, columns: set[str]) -> str | None:
        """What the mapped columns lack for this method's trainer, or None when they suffice."""
        return None if self.accepts(dict.fromkeys(columns)) else self.needs

    def build(self, *args: Any, **kwargs: Any) -> Any:
        """Build the TRL trainer (imports the builder, and torch, only now)."""
        from importlib import import_module

        module, _, function = self.builder.partition(":")
        return getattr(import_module(module), function)(*args, **kwargs)
