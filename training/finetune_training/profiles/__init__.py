"""Training methods, one module each (torch-free): adding a method is its module, its entry in `PROFILES`
and a `Method` value; the validator, planner, runtime and model card look the profile up.

The trainer itself is built by the function the profile names (`MethodProfile.build`), imported only when
a run trains.
"""

from finetune_training.plan import Method
from finetune_training.profiles import dpo, grpo, kto, sft
from finetune_training.profiles.base import MethodProfile, row_kind

PROFILES: dict[Method, MethodProfile] = {
    p.method: p for p in (sft.PROFILE, dpo.PROFILE, grpo.PROFILE, kto.PROFILE)
}


def profile(method: Method | str) -> MethodProfile:
    """The profile of a method."""
    return PROFILES[Method(method)]


__all__ = ["PROFILES", "MethodProfile", "profile", "row_kind"]
