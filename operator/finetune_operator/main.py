"""The operator's entry point: `kopf run --standalone -m finetune_operator.main --all-namespaces`."""

from finetune_operator.handlers import jobs, startup

__all__ = ["jobs", "startup"]
