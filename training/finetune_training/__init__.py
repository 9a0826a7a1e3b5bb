"""The training runtime of finetune-operator: `ftjob train --plan plan.json`.

The operator uses only its torch-free modules (:mod:`~finetune_training.plan`,
:mod:`~finetune_training.camel`, :mod:`~finetune_training.events`, :mod:`~finetune_training.mapping`);
the import-linter contracts in pyproject.toml (`make lint`) keep it off the ones that import torch,
transformers, TRL, PEFT or datasets, `ftjob train` excepted.
"""
