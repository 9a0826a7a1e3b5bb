"""The operator's entry point: `kopf run --standalone -m finetune_operator.main --all-namespaces`."""

from finetune_operator.handlers import indexes, jobs, startup

__all__ = ["indexes", "jobs", "startup"]
