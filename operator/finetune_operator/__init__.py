"""finetune-operator: reconciles FineTuneJob resources (finetune.dev/v1alpha1) into trained models."""

GROUP = "finetune.dev"
VERSION = "v1alpha1"
PLURAL = "finetunejobs"
KIND = "FineTuneJob"
