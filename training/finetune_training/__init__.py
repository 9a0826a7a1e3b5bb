"""The training runtime of finetune-operator: `ftjob train --plan plan.json`.

Only :mod:`finetune_training.plan` and :mod:`finetune_training.mapping` are importable without torch;
the operator imports nothing else from this package.
"""
