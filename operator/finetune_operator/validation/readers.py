"""Read a sample of rows (and the row count when it is cheap) from one data file.

Every reader takes an opener returning a binary file object, so the same code reads local files and
Hub files (through `HfFileSystem`, which fetches byte ranges): only the footer and the first rows are
read, never the whole file unless it is small.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from finetune_operator.validation.errors import invalid

if TYPE_CHECKING:
    import pyarrow as pa

# pyarrow is imported inside the functions that read files: the operator imports these modules (file formats,
# layouts) but reads data only in its validation child process (`validation.isolated`), and never loads it.

Opener = Callable[[], BinaryIO]

FORMATS = {
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
}
"""Data file extensions we read, and their format."""

MIB = 1024 * 1024
SAMPLE_BYTES = 64 * MIB
"""At most this many (uncompressed) bytes of rows in the sample: enormous rows shrink the sample."""
TAIL_BYTES = 64 * 1024


@dataclass
class FileRead:
    """What one file gave."""

    rows: list[dict[str, Any]]
    columns: list[tuple[str, str]]
    """(name, Arrow type) pairs."""
    num_rows: int | None
    """Exact row count, when it was cheap to have (footer, or the whole file read)."""
    estimated_rows: int | None = None
    """Row count estimated from the bytes the sample took, when not exact."""
    notes: list[str] = field(default_factory=list)


def file_format(path: str) -> str | None:
    """The data format of ``path`` from its extension, or None when we do not read it."""
    lower = path.lower()
    return next((fmt for ext, fmt in FORMATS.items() if lower.endswith(ext)), None)


def read_file(
    opener: Opener,
    path: str,
    size: int | None,
    *,
    rows: int,
    max_row_bytes: int,
    full_read_bytes: int,
) -> FileRead:
    """Read up to ``rows`` rows of the data file ``path``.

    Parameters
    ----------
    opener
        Returns a new binary file object on the file (seekable).
    path
        The file's name, for the format and for messages.
    size
        The file size in bytes, when known.
    rows
        How many rows to sample.
    max_row_bytes
        A row larger than this is an error (an enormous row).
    full_read_bytes
        Files up to this size are read whole, for an exact row count.

    Returns
    -------
    FileRead

    Raises
    ------
    SpecError
        `DatasetInvalid` for a corrupt, truncated or wrongly shaped file.
    """
    import pyarrow as pa

    fmt = file_format(path)
    try:
        if fmt == "parquet":
            return read_parquet(opener, path, rows=rows, max_row_bytes=max_row_bytes)
        if fmt == "csv":
            delimiter = "\t" if path.lower().endswith(".tsv") else ","
            return read_csv(
                opener, path, size, rows=rows, delimiter=delimiter, full_read_bytes=full_read_bytes
            )
        if fmt in ("json", "jsonl"):
            return read_json(
                opener, path, size, rows=rows, max_row_bytes=max_row_bytes, full_read_bytes=full_read_bytes
            )
    except (pa.ArrowException, OSError, EOFError) as exc:
        if getattr(exc, "response", None) is not None:
            raise  # an HTTP error of a remote file: the caller tells transient from permanent
        raise invalid(f"`{path}` cannot be read as {fmt}: {_first_line(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise invalid(f"`{path}` is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    raise invalid(f"`{path}` is not a data file we read (use {', '.join(sorted(FORMATS))})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def arrow_columns(schema: pa.Schema) -> list[tuple[str, str]]:
    """(name, type) pairs of an Arrow schema."""
    return [(f.name, str(f.type)) for f in schema]


def check_row_size(row: dict[str, Any], where: str, max_row_bytes: int) -> None:
    """Refuse a row whose text exceeds ``max_row_bytes`` (an enormous row breaks tokenising and memory)."""
    size = approx_size(row)
    if size > max_row_bytes:
        raise invalid(
            f"{where} is {size / MIB:.1f} MiB, over the {max_row_bytes / MIB:.0f} MiB a row may have: "
            "split such rows or drop them"
        )


def approx_size(value: Any) -> int:
    """Roughly the bytes a value takes as text."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(len(str(k)) + approx_size(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(approx_size(v) for v in value)
    return 8


# ------------------------------------------------------------------------------------------------ parquet


SAMPLED_ROW_GROUPS = 4
"""Sample a Parquet file's rows from at most this many row groups, spread over the file."""


def spread_indexes(count: int, most: int) -> list[int]:
    """Up to `most` indexes evenly spaced over `range(count)`, the first and the last included."""
    if count <= most:
        return list(range(count))
    step = (count - 1) / (most - 1)
    return sorted({round(i * step) for i in range(most)})


def read_parquet(opener: Opener, path: str, *, rows: int, max_row_bytes: int) -> FileRead:
    """Footer for the schema and row count; the first rows of row groups spread over the file (the first
    and the last among them) for the sample, so rows written later in the file are seen too."""
    import pyarrow.parquet as pq

    with opener() as handle:
        # No pre-buffering: it would fetch whole column chunks (all of a one-row-group file) up front.
        pf = pq.ParquetFile(handle, pre_buffer=False)
        meta = pf.metadata
        columns = arrow_columns(pf.schema_arrow)
        total = meta.num_rows
        if total == 0 or meta.num_row_groups == 0:
            return FileRead(rows=[], columns=columns, num_rows=0)
        group = meta.row_group(0)
        per_row = max(1, group.total_byte_size // max(1, group.num_rows))
        # Enormous rows shrink the sample instead of pulling gigabytes.
        want = max(1, min(rows, SAMPLE_BYTES // per_row))
        groups = spread_indexes(meta.num_row_groups, SAMPLED_ROW_GROUPS)
        share = -(-want // len(groups))  # ceil
        sample: list[dict[str, Any]] = []
        for group_index in groups:
            size = min(share, want - len(sample))
            if size <= 0:
                break
            batch = next(pf.iter_batches(batch_size=size, row_groups=[group_index], use_threads=True), None)
            sample += [] if batch is None else batch.to_pylist()
    for i, row in enumerate(sample):
        check_row_size(row, f"row {i} of `{path}`", max_row_bytes)
    return FileRead(rows=sample, columns=columns, num_rows=total)


# ---------------------------------------------------------------------------------------------------- csv


def read_csv(
    opener: Opener, path: str, size: int | None, *, rows: int, delimiter: str, full_read_bytes: int
) -> FileRead:
    """Stream CSV blocks until the sample is full; count the rest when the file is small."""
    import pyarrow.csv as pacsv

    block = 1 << 20
    with opener() as handle:
        reader = pacsv.open_csv(
            handle,
            read_options=pacsv.ReadOptions(block_size=block),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        )
        columns = arrow_columns(reader.schema)
        sample: list[dict[str, Any]] = []
        count, blocks, exhausted = 0, 0, False
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                exhausted = True
                break
            blocks += 1
            count += batch.num_rows
            if len(sample) < rows:
                sample.extend(batch.slice(0, rows - len(sample)).to_pylist())
            elif size is None or size > full_read_bytes:
                break
    if exhausted:
        return FileRead(rows=sample, columns=columns, num_rows=count)
    estimate = None if size is None else max(count, int(size * count / max(1, blocks * block)))
    return FileRead(rows=sample, columns=columns, num_rows=None, estimated_rows=estimate)


# --------------------------------------------------------------------------------------------------- json


def read_json(
    opener: Opener, path: str, size: int | None, *, rows: int, max_row_bytes: int, full_read_bytes: int
) -> FileRead:
    """A JSON array of rows or JSON Lines (whatever the extension says: `.json` files are often JSONL)."""
    with opener() as handle:
        head = handle.read(4096)
        first = head.removeprefix(codecs.BOM_UTF8).lstrip()[:1]
        if not first:
            return FileRead(rows=[], columns=[], num_rows=0)
        handle.seek(0)
        if first == b"[":
            result = _read_json_array(handle, path, size, rows, max_row_bytes, full_read_bytes)
        elif first == b"{":
            result = _read_json_lines(handle, path, size, rows, max_row_bytes, full_read_bytes)
        else:
            raise invalid(f"`{path}` must hold a JSON array of rows or JSON Lines (one object per line)")
    result.columns = _infer_columns(result.rows)
    return result


def _infer_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    import pyarrow as pa

    if not rows:
        return []
    try:
        schema = pa.Table.from_pylist(rows).schema
        return arrow_columns(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # Mixed types across rows: name the columns, say the type is mixed (the checks count it).
        names = list(dict.fromkeys(k for r in rows for k in r))
        return [(n, "mixed") for n in names]


def _as_row(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        kind = "null" if value is None else type(value).__name__
        raise invalid(f"{where} is a JSON {kind}; every row must be a JSON object (column: value)")
    return value


class LineReader:
    """`readline(limit)` over any binary file (fsspec's files have no limit argument)."""

    def __init__(self, handle: BinaryIO, chunk: int = 1 << 20) -> None:
        self.handle = handle
        self.chunk = chunk
        self.buf = b""
        self.eof = False

    def _fill(self) -> None:
        data = self.handle.read(self.chunk)
        self.eof = not data
        self.buf += data

    def readline(self, limit: int) -> bytes:
        """The next line with its newline, at most ``limit`` bytes; b"" at the end."""
        start = 0
        while True:
            end = self.buf.find(b"\n", start)
            if end >= 0 and end < limit:
                line, self.buf = self.buf[: end + 1], self.buf[end + 1 :]
                return line
            if len(self.buf) >= limit or self.eof:
                line, self.buf = self.buf[:limit], self.buf[limit:]
                return line
            start = len(self.buf)
            self._fill()

    def at_end(self) -> bool:
        """Whether nothing is left."""
        if not self.buf and not self.eof:
            self._fill()
        return not self.buf and self.eof


def _read_json_lines(
    handle: BinaryIO, path: str, size: int | None, rows: int, max_row_bytes: int, full_read_bytes: int
) -> FileRead:
    sample: list[dict[str, Any]] = []
    line_no, consumed = 0, 0
    exhausted = False
    lines = LineReader(handle)
    while len(sample) < rows:
        line = lines.readline(max_row_bytes + 1)
        if not line:
            exhausted = True
            break
        line_no += 1
        consumed += len(line)
        if len(line) > max_row_bytes and not line.endswith(b"\n"):
            raise invalid(
                f"line {line_no} of `{path}` is over the {max_row_bytes / MIB:.0f} MiB a row may have: "
                "split such rows or drop them"
            )
        text = line.strip()
        if not text:
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            if line_no == 1:
                # One pretty-printed object: not rows at all.
                raise invalid(_single_object_message(handle, path)) from exc
            truncated = " (the file looks truncated)" if not line.endswith(b"\n") else ""
            raise invalid(f"line {line_no} of `{path}` is not valid JSON: {exc.msg}{truncated}") from exc
        sample.append(_as_row(value, f"line {line_no} of `{path}`"))
    if exhausted or lines.at_end():
        return FileRead(rows=sample, columns=[], num_rows=len(sample))
    _check_jsonl_tail(handle, path, size)
    if size is not None and size <= full_read_bytes:
        handle.seek(consumed)
        rest = 0
        last = b""
        while chunk := handle.read(8 * MIB):
            # Newlines, less blank lines (`datasets` skips those too).
            rest += chunk.count(b"\n") - chunk.count(b"\n\n")
            last = chunk
        if last and not last.endswith(b"\n"):
            rest += 1
        return FileRead(rows=sample, columns=[], num_rows=len(sample) + rest)
    estimate = None if size is None else int(size * len(sample) / max(1, consumed))
    return FileRead(rows=sample, columns=[], num_rows=None, estimated_rows=estimate)


def _check_jsonl_tail(handle: BinaryIO, path: str, size: int | None) -> None:
    """A truncated JSONL file ends in half a line: parse the last line (when it fits the tail we read)."""
    if size is None:
        return
    handle.seek(max(0, size - TAIL_BYTES))
    tail = handle.read(TAIL_BYTES)
    lines = [ln for ln in tail.split(b"\n") if ln.strip()]
    if len(lines) < 2:
        return
    try:
        json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise invalid(
            f"the last line of `{path}` is not valid JSON ({exc.msg}): the file looks truncated"
        ) from exc


def _single_object_message(handle: BinaryIO, path: str) -> str:
    handle.seek(0)
    data = handle.read(64 * MIB)
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        return f"`{path}` is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    if isinstance(doc, dict):
        lists = [k for k, v in doc.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
        hint = f"; its rows seem to be under `{lists[0]}`: store that list as the file" if lists else ""
        return f"`{path}` is one JSON object, not rows: use a JSON array of objects or JSON Lines{hint}"
    return f"`{path}` must hold a JSON array of rows or JSON Lines"


def _read_json_array(
    handle: BinaryIO, path: str, size: int | None, rows: int, max_row_bytes: int, full_read_bytes: int
) -> FileRead:
    if size is not None and size <= full_read_bytes:
        data = handle.read()
        try:
            doc = json.loads(data)
        except json.JSONDecodeError as exc:
            truncated = (
                "" if data.rstrip().endswith(b"]") else "; it does not end with `]`: the file looks truncated"
            )
            raise invalid(
                f"`{path}` is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}){truncated}"
            ) from exc
        sample = [_as_row(v, f"item {i} of `{path}`") for i, v in enumerate(doc[:rows])]
        for i, row in enumerate(sample):
            check_row_size(row, f"item {i} of `{path}`", max_row_bytes)
        return FileRead(rows=sample, columns=[], num_rows=len(doc))
    return _stream_json_array(handle, path, size, rows, max_row_bytes)


def _stream_json_array(
    handle: BinaryIO, path: str, size: int | None, rows: int, max_row_bytes: int
) -> FileRead:
    """Decode the array's first ``rows`` objects one at a time, reading only as far as they reach."""
    if size is not None:
        handle.seek(max(0, size - TAIL_BYTES))
        if not handle.read(TAIL_BYTES).rstrip().endswith(b"]"):
            raise invalid(f"`{path}` does not end with `]`: the JSON array looks truncated")
        handle.seek(0)
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8-sig")()
    buf, pos, chunk, eof = "", 0, 1 << 20, False
    bytes_read, chars_dropped = 0, 0
    sample: list[dict[str, Any]] = []

    def more() -> None:
        nonlocal buf, pos, chunk, eof, bytes_read, chars_dropped
        data = handle.read(chunk)
        chunk = min(chunk * 2, 64 * MIB)
        bytes_read += len(data)
        eof = not data
        chars_dropped += pos
        buf = buf[pos:] + utf8.decode(data, final=eof)
        pos = 0

    def skip_ws() -> None:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf) or eof:
                return
            more()

    more()
    skip_ws()
    pos += 1  # the opening `[`
    complete = False
    while len(sample) < rows:
        skip_ws()
        if pos >= len(buf):
            raise invalid(f"`{path}` ends inside the JSON array: the file looks truncated")
        if buf[pos] == "]":
            complete = True
            break
        start = pos
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
                break
            except json.JSONDecodeError as exc:
                if eof:
                    raise invalid(f"item {len(sample)} of `{path}` is not valid JSON: {exc.msg}") from exc
                if len(buf) - start > max_row_bytes:
                    raise invalid(
                        f"item {len(sample)} of `{path}` is over the {max_row_bytes / MIB:.0f} MiB "
                        "a row may have: split such rows or drop them"
                    ) from exc
                more()
                start = pos
        row = _as_row(value, f"item {len(sample)} of `{path}`")
        check_row_size(row, f"item {len(sample)} of `{path}`", max_row_bytes)
        sample.append(row)
        pos = end
        skip_ws()
        if pos < len(buf) and buf[pos] == ",":
            pos += 1
        elif pos < len(buf) and buf[pos] == "]":
            complete = True
            break
        else:
            raise invalid(
                f"`{path}` has no `,` or `]` after item {len(sample) - 1}: it is not a valid JSON array"
            )
    if complete:
        return FileRead(rows=sample, columns=[], num_rows=len(sample))
    consumed_chars = chars_dropped + pos
    total_chars = chars_dropped + len(buf)
    consumed_bytes = bytes_read * consumed_chars / max(1, total_chars)
    estimate = None if size is None else max(len(sample), int(size * len(sample) / max(1.0, consumed_bytes)))
    return FileRead(rows=sample, columns=[], num_rows=None, estimated_rows=estimate)
