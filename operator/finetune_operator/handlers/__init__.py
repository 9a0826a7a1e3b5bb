"""kopf handlers: thin wrappers over `finetune_operator.reconcile`. Only this package and main import kopf."""
