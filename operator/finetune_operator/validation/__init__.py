"""Dataset validation before any GPU: per-method verdicts, structural checks, the mapping to apply.

`inspect_dataset` serves `ftjob validate`, the operator's validate phase, and (through
`finetune_training.mapping`) the training runtime's data mapping.
"""

from finetune_operator.validation.inspect import inspect_dataset
from finetune_operator.validation.report import DatasetReport, Finding, LengthStats, Severity

__all__ = ["DatasetReport", "Finding", "LengthStats", "Severity", "inspect_dataset"]
