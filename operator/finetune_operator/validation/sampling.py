"""A sample of a split spread over one or more files, and the split's row count."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from finetune_operator.validation.errors import invalid
from finetune_operator.validation.layout import DataFile, Layout
from finetune_operator.validation.readers import FileRead, Opener, file_format, read_file, spread_indexes

FOOTER_LIMIT = 64
"""Read at most this many Parquet footers for an exact count; beyond, estimate from file sizes."""
SAMPLED_FILES = 8
"""Sample rows from at most this many files, spread over the split (first, last and evenly between): a
problem that starts in a later file (a new column, tool-call turns) shows before any GPU is allocated."""


def spread(files: list[DataFile], count: int = SAMPLED_FILES) -> list[DataFile]:
    """Up to `count` files evenly spaced over `files`, the first and the last included, in order."""
    return [files[i] for i in spread_indexes(len(files), count)]


@dataclass
class Sample:
    """What a source gave: sampled rows, schema and row count."""

    rows: list[dict[str, Any]]
    columns: list[tuple[str, str]]
    total_rows: int | None
    estimated: bool
    file_format: str
    layout: Layout
    kind: str
    """`Local` or `Hub`."""
    revision: str | None = None
    notes: list[str] = field(default_factory=list)


def sample_split(
    layout: Layout,
    open_file: Callable[[DataFile], Opener],
    *,
    kind: str,
    rows: int,
    max_row_bytes: int,
    full_read_bytes: int,
    where: str,
) -> Sample:
    """Sample ``rows`` rows spread over the split's files (see :func:`spread`) and count (or estimate) its
    rows: each sampled file gives an equal share, and the first file makes up what short files lack.

    Raises
    ------
    SpecError
        `DatasetInvalid` when a file is corrupt, or the split has no rows.
    """
    files = layout.files
    fmt = file_format(files[0].path) or "unknown"
    sample: list[dict[str, Any]] = []
    columns: list[tuple[str, str]] = []
    exact, estimated_total, estimated = 0, 0.0, False
    read_bytes, read_rows = 0, 0
    chosen = spread(files)
    share = -(-rows // len(chosen))  # ceil
    unread = [f for f in files if f not in chosen]
    for index, f in enumerate(chosen):
        # The last chosen file may take what is still missing (files shorter than their share).
        want = rows - len(sample) if index == len(chosen) - 1 else min(share, rows - len(sample))
        if want <= 0:
            unread.append(f)
            continue
        got: FileRead = read_file(
            open_file(f),
            f.path,
            f.size,
            rows=want,
            max_row_bytes=max_row_bytes,
            full_read_bytes=full_read_bytes,
        )
        sample.extend(got.rows)
        columns = columns or got.columns
        if got.num_rows is not None:
            exact += got.num_rows
            if f.size:
                read_bytes += f.size
                read_rows += got.num_rows
        else:
            estimated = True
            estimated_total += got.estimated_rows or len(got.rows)
            if f.size and got.estimated_rows:
                read_bytes += f.size
                read_rows += got.estimated_rows
    if fmt == "parquet" and len(unread) <= FOOTER_LIMIT:
        for f in unread:
            exact += _footer_rows(open_file(f), f.path)
    elif unread:
        estimated = True
        per_byte = read_rows / read_bytes if read_bytes else 0.0
        estimated_total += sum((f.size or 0) * per_byte for f in unread)
    total = exact + round(estimated_total)
    if not sample:
        raise invalid(
            f"{where} has no rows (split `{layout.split}`: {', '.join(f'`{f.path}`' for f in files[:5])})"
        )
    return Sample(
        rows=sample,
        columns=columns,
        total_rows=total if total else None,
        estimated=estimated,
        file_format=fmt,
        layout=layout,
        kind=kind,
    )


def _footer_rows(opener: Opener, path: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with opener() as handle:
            return int(pq.read_metadata(handle).num_rows)
    except (pa.ArrowInvalid, OSError) as exc:
        raise invalid(f"`{path}` is not a valid Parquet file: {exc}") from exc
