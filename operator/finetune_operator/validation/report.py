"""The dataset report: what `ftjob validate -o json` prints and what the operator condenses into status.

The JSON form (camelCase, every key present) is a stable schema for tools and agents: fields are only
ever added. `tests/unit/data/dataset_report.schema.json` pins it.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from finetune_operator.api.status import MethodVerdict, ValidationSummary, Verdict
from finetune_training.camel import CamelModel

REPORT_KIND = "DatasetReport"
REPORT_API_VERSION = "finetune.dev/v1alpha1"


class Severity(StrEnum):
    """How much a finding matters."""

    ERROR = "Error"
    """The method cannot train on these rows as they are (the run would fail or learn nothing)."""
    WARNING = "Warning"
    """The run works, but the rows are probably not what you want."""
    INFO = "Info"
    """Worth knowing."""


class ColumnInfo(CamelModel):
    """One column of the dataset."""

    name: str
    type: str
    """The Arrow type (`string`, `list<struct<content: string, role: string>>`)."""


class Finding(CamelModel):
    """One structural check on the sampled rows, with its counts scaled to the whole dataset."""

    check: str
    """CamelCase name of the check (`NoAssistantTurn`, `EmptyContent`, `ChosenEqualsRejected`)."""
    method: str | None = None
    """The method the check is about; None for checks on the raw rows."""
    severity: Severity
    message: str
    sample_rows: int
    """Sampled rows that fail the check."""
    share: float
    """Share of the sampled rows that fail it (0 to 1)."""
    estimated_rows: int | None = None
    """The share scaled to the dataset's row count, when the count is known or estimated."""
    examples: list[int] = Field(default_factory=list)
    """Indices (in the sample) of the first failing rows."""


class LengthStats(CamelModel):
    """Row lengths in tokens, against the job's `maxLength`."""

    max_length: int
    tokenizer: str | None = None
    """The tokenizer used; None when lengths are estimated."""
    estimated: bool
    """True when lengths are characters / 4, not real tokens."""
    mean: float
    p50: int
    p95: int
    max: int
    over_max_length: float
    """Share of sampled rows longer than `maxLength` (they are truncated)."""
    note: str | None = None
    """Why the tokenizer could not be used, when it was asked for."""


class SourceInfo(CamelModel):
    """Where the rows were read from."""

    kind: str
    """`Local` or `Hub`."""
    files: list[str] = Field(default_factory=list)
    """The data files of the split (at most 20 listed)."""
    file_count: int = 0
    file_format: str
    """`parquet`, `json`, `jsonl` or `csv`."""
    revision: str | None = None
    configs: list[str] = Field(default_factory=list)
    """Configurations the dataset has (Hub)."""
    splits: list[str] = Field(default_factory=list)
    """Splits the configuration has."""


class DatasetReport(CamelModel):
    """Everything `ftjob validate` found out about a dataset, per method."""

    api_version: str = REPORT_API_VERSION
    kind: str = REPORT_KIND
    dataset: str
    config: str | None = None
    split: str
    revision: str | None = None
    source: SourceInfo
    rows: int | None = None
    """Rows in the split."""
    rows_estimated: bool = False
    """True when `rows` is estimated from file sizes, not counted or read from metadata."""
    sampled_rows: int
    columns: list[ColumnInfo] = Field(default_factory=list)
    format: str
    """The format recognised (`messages`, `prompt-completion`, `alpaca`, `sharegpt`, `question-answer`…)."""
    format_description: str = ""
    """The format in words, with the columns it was recognised by."""
    verdicts: list[MethodVerdict] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    duplicate_share: float = 0.0
    """Share of sampled rows that repeat an earlier sampled row."""
    lengths: LengthStats | None = None
    warnings: list[str] = Field(default_factory=list)
    elapsed_seconds: float = 0.0

    def verdict(self, method: str) -> MethodVerdict | None:
        """The verdict for ``method`` (case-insensitive), or None when it was not asked for."""
        return next((v for v in self.verdicts if v.method.upper() == method.upper()), None)

    def ready(self, method: str) -> bool:
        """Whether ``method`` can train on the dataset as configured (mapping included)."""
        found = self.verdict(method)
        return found is not None and found.verdict == Verdict.READY

    def summary(self, max_warnings: int = 5) -> ValidationSummary:
        """The compact verdict stored in `status.validation`.

        Parameters
        ----------
        max_warnings
            Keep at most this many warnings (status stays small).

        Returns
        -------
        ValidationSummary
        """
        return ValidationSummary(
            dataset=self.dataset,
            split=self.split,
            rows=self.rows,
            format=self.format,
            verdicts=[v.model_copy() for v in self.verdicts],
            warnings=self.warnings[:max_warnings],
            mean_tokens=None if self.lengths is None else round(self.lengths.mean, 1),
        )

    def to_json(self) -> str:
        """The stable JSON form: camelCase, every key present (None as null)."""
        return self.model_dump_json(by_alias=True, indent=2)
