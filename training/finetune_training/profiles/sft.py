"""SFT: supervised fine-tuning on conversations, prompt/completion pairs or plain text.

Learning rates: full fine-tuning 2e-5 (TRL's default); LoRA 2e-4 (the QLoRA paper's and PEFT's common
choice). Packing is on by default (documents kept apart by the runtime's attention).
"""

from finetune_training.plan import Method
from finetune_training.profiles.base import MethodProfile, row_kind

PROFILE = MethodProfile(
    method=Method.SFT,
    title="supervised fine-tuning (SFT)",
    tag="sft",
    needs="SFT needs `messages`, `prompt`/`completion` or `text`",
    trl_columns=("messages", "prompt", "completion", "text", "tools"),
    accepts=lambda row: row_kind(row) in ("messages", "prompt-completion", "text"),
    learning_rate_full=2e-5,
    learning_rate_adapter=2e-4,
    defaults={"packing": True},
    own_fields=("packing",),
    builder="finetune_training.methods:build_sft_trainer",
)
