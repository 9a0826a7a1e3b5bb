"""DPO: Direct Preference Optimization on `chosen`/`rejected` pairs.

It moves a policy only slightly away from its reference: 5e-7 full (Zephyr, Tunstall et al. 2023; TRL's
docs), 5e-6 with LoRA; beta 0.1 (Rafailov et al. 2023). Each row forwards two sequences, and the loss needs
the reference model's log-probabilities (with LoRA, the base model with the adapter off).
"""

from finetune_training.plan import Method
from finetune_training.profiles.base import MethodProfile, row_kind

PROFILE = MethodProfile(
    method=Method.DPO,
    title="Direct Preference Optimization (DPO)",
    tag="dpo",
    needs="DPO needs preference pairs: `chosen` and `rejected` (with or without `prompt`)",
    trl_columns=("prompt", "chosen", "rejected", "tools"),
    accepts=lambda row: row_kind(row) == "preference",
    learning_rate_full=5e-7,
    learning_rate_adapter=5e-6,
    defaults={"beta": 0.1},
    sequences_per_row=2,
    reference_model="always",
    builder="finetune_training.methods:build_dpo_trainer",
)
