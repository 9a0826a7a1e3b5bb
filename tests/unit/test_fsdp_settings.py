"""FSDP as the runtime configures it: TRL's config accepts it, and the saved model is a full state dict.

(Accelerate runs FSDP on GPUs only; on CPU the Trainer falls back to DDP, so the run itself is a GPU check.)
"""

from __future__ import annotations

from pathlib import Path

from finetune_training.methods import with_fsdp_settings


def test_fsdp_saves_a_full_state_dict_and_checkpoints_activations_itself(tmp_path: Path) -> None:
    from trl import SFTConfig

    args = with_fsdp_settings(
        {
            "output_dir": str(tmp_path),
            "use_cpu": True,
            "fsdp": "full_shard auto_wrap",
            "gradient_checkpointing": True,
        }
    )
    config = SFTConfig(**args)
    plugin = config.fsdp_plugin_args
    assert plugin is not None
    assert plugin["fsdp_version"] == 2 and plugin["state_dict_type"] == "FULL_STATE_DICT"
    assert plugin["auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert plugin["activation_checkpointing"] is True and config.gradient_checkpointing is False


def test_without_fsdp_nothing_changes() -> None:
    args = {"gradient_checkpointing": True}
    assert with_fsdp_settings(args) == args
