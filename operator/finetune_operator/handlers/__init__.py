"""kopf handlers: thin wrappers over `finetune_operator.lifecycle.reconcile`.

Only this package and main import kopf (an import-linter contract in pyproject.toml).
"""
