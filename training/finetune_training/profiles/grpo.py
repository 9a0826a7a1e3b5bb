"""GRPO: Group Relative Policy Optimization, rewarded on completions it samples for each prompt.

1e-6 full (DeepSeekMath), 1e-5 with LoRA; 8 generations per prompt (TRL's and DeepSeek's choice) of up to
256 tokens; beta 0 (TRL 1.x: no KL term, so no reference model, as DAPO/Dr. GRPO found it unnecessary).
The micro-batch is one prompt's group of generations (TRL needs a multiple of `numGenerations`).
"""

from finetune_training.plan import Method
from finetune_training.profiles.base import MethodProfile

PROFILE = MethodProfile(
    method=Method.GRPO,
    title="Group Relative Policy Optimization (GRPO)",
    tag="grpo",
    needs="GRPO needs a `prompt` column",
    trl_columns=("prompt", "answer", "tools"),
    accepts=lambda row: "prompt" in row,
    learning_rate_full=1e-6,
    learning_rate_adapter=1e-5,
    defaults={"beta": 0.0, "num_generations": 8, "max_completion_length": 256, "per_device_batch_size": 8},
    own_fields=("num_generations", "max_completion_length"),
    generates=True,
    reference_model="when_beta",
    builder="finetune_training.methods:build_grpo_trainer",
)
