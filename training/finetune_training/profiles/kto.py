"""KTO: Kahneman-Tversky Optimization on unpaired feedback, rows of `prompt`/`completion` with a boolean `label`
(desirable or not), as thumbs up/down data comes (Ethayarajh et al. 2024).

TRL's KTOConfig defaults: learning rate 1e-6 full (10x with LoRA, as for the other methods), beta 0.1. The
loss compares each completion's log-ratio to a KL estimate from mismatched prompt/completion pairs in the
same batch, so each row forwards two sequences through the policy and the reference model.
"""

from finetune_training.plan import Method
from finetune_training.profiles.base import MethodProfile, row_kind

PROFILE = MethodProfile(
    method=Method.KTO,
    title="Kahneman-Tversky Optimization (KTO)",
    tag="kto",
    needs="KTO needs `prompt`/`completion` and a boolean `label`",
    trl_columns=("prompt", "completion", "label", "tools"),
    accepts=lambda row: row_kind(row) == "prompt-completion" and "label" in row,
    learning_rate_full=1e-6,
    learning_rate_adapter=1e-5,
    defaults={"beta": 0.1},
    sequences_per_row=2,
    reference_model="always",
    builder="finetune_training.methods:build_kto_trainer",
)
