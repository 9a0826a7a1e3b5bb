"""Conditions per the Kubernetes API conventions, and the phase that summarises them."""

from __future__ import annotations

from finetune_operator.api.status import Condition, ConditionType, FineTuneJobStatus, Phase, now


def remove_condition(status: FineTuneJobStatus, type_: str) -> bool:
    """Drop a condition (when a new generation re-opens a finished job). True when one was there."""
    kept = [c for c in status.conditions if c.type != str(type_)]
    removed = len(kept) != len(status.conditions)
    status.conditions = kept
    return removed


def get_condition(status: FineTuneJobStatus, type_: str) -> Condition | None:
    """The condition of that type, if any."""
    return next((c for c in status.conditions if c.type == type_), None)


def is_true(status: FineTuneJobStatus, type_: str, generation: int | None = None) -> bool:
    """Whether the condition is True (for this generation, when given)."""
    cond = get_condition(status, type_)
    if cond is None or cond.status != "True":
        return False
    return generation is None or cond.observed_generation == generation


def set_condition(
    status: FineTuneJobStatus,
    type_: ConditionType | str,
    cond_status: str,
    reason: str,
    message: str = "",
    generation: int | None = None,
) -> bool:
    """Set a condition, moving `lastTransitionTime` only when its status flips. True when anything changed."""
    old = get_condition(status, str(type_))
    if old and (old.status, old.reason, old.message, old.observed_generation) == (
        cond_status,
        reason,
        message,
        generation,
    ):
        return False
    transition = old.last_transition_time if old and old.status == cond_status else now()
    new = Condition(
        type=str(type_),
        status=cond_status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    status.conditions = [c for c in status.conditions if c.type != str(type_)] + [new]
    order = [t.value for t in ConditionType]
    status.conditions.sort(key=lambda c: order.index(c.type) if c.type in order else len(order))
    return True


def summarise_phase(status: FineTuneJobStatus) -> Phase:
    """The phase the conditions imply. Conditions are the truth; the phase only summarises them."""
    failed = get_condition(status, ConditionType.FAILED)
    if failed and failed.status == "True":
        return Phase.CANCELLED if failed.reason == "Cancelled" else Phase.FAILED
    if is_true(status, ConditionType.COMPLETE):
        return Phase.SUCCEEDED
    if is_true(status, ConditionType.BLOCKED):
        return Phase.BLOCKED
    training = get_condition(status, ConditionType.TRAINING)
    if training and training.status == "True":
        return Phase.PUBLISHING if training.reason == "Publishing" else Phase.RUNNING
    submitted = get_condition(status, ConditionType.SUBMITTED)
    if submitted and submitted.status == "True":
        return Phase.QUEUED
    if submitted and submitted.reason == "Suspended":
        return Phase.SUSPENDED
    if is_true(status, ConditionType.HARDWARE_PLANNED):
        return Phase.PLANNED
    if get_condition(status, ConditionType.DATASET_VALIDATED):
        return Phase.VALIDATING
    return Phase.PENDING
