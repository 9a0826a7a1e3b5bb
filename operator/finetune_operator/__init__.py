"""finetune-operator: reconciles FineTuneJob resources (finetune.dev/v1alpha1) into trained models."""

GROUP = "finetune.dev"
VERSION = "v1alpha1"
PLURAL = "finetunejobs"
KIND = "FineTuneJob"
FINALIZER = "finetune.dev/cancel-backend-work"
"""Held by a FineTuneJob whose work only the operator can cancel (a Hugging Face Job, a local process)."""
