"""Local files and folders: a data file is the `train` split; a folder follows the Hub's conventions."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

from finetune_operator.validation.errors import names, not_found
from finetune_operator.validation.layout import DataFile, Layout, resolve
from finetune_operator.validation.readers import FORMATS, Opener
from finetune_operator.validation.sampling import Sample, sample_split

FULL_READ_BYTES = 256 * 1024 * 1024
"""Local JSON/CSV files up to this size are read whole for an exact row count (fast from disk)."""


def looks_local(name: str) -> bool:
    """Whether `name` is a local path rather than a Hub repo id, from its shape alone.

    Validation and planning read `name` from the filesystem exactly when this is true. It never looks
    at the filesystem: whether a path exists on the operator's host must not change what a job sees.
    A Hub id is `name` or `owner/name`; a path is absolute, starts with `.` or `~`, has a backslash,
    more than one slash, or a data file's extension.
    """
    return (
        name.startswith((".", "/", "~"))
        or "\\" in name
        or name.count("/") > 1
        or name.lower().endswith(tuple(FORMATS))
    )


def _opener(root: Path) -> Callable[[DataFile], Opener]:
    def open_file(f: DataFile) -> Opener:
        return lambda: cast(BinaryIO, open(root / f.path, "rb"))

    return open_file


def list_folder(root: Path) -> list[DataFile]:
    """Every file under ``root`` (hidden folders skipped), paths relative to it."""
    out: list[DataFile] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        for name in sorted(files):
            full = Path(folder) / name
            out.append(DataFile(full.relative_to(root).as_posix(), full.stat().st_size))
    return out


def sample_local(path: Path, *, config: str | None, split: str, rows: int, max_row_bytes: int) -> Sample:
    """Sample a local file or folder.

    Raises
    ------
    SpecError
        `DatasetNotFound` for a missing path or split; `DatasetInvalid` for unreadable data.
    """
    where = f"`{path}`"
    if path.is_file():
        if not any(path.name.lower().endswith(ext) for ext in FORMATS):
            raise not_found(f"{where} is not a data file we read (use {names(list(FORMATS))})")
        if split != "train":
            raise not_found(f"{where} is a single file: it has only the split `train`, not `{split}`")
        if config is not None:
            raise not_found(f"{where} is a single file: it has no config `{config}`")
        layout = Layout(
            "default", "train", [DataFile(path.name, path.stat().st_size)], ["default"], ["train"]
        )
        root = path.parent
    elif path.is_dir():
        files = list_folder(path)
        readme = path / "README.md"
        text = readme.read_text(errors="replace") if readme.is_file() else None
        layout = resolve(files, readme=text, config=config, split=split, where=where)
        root = path
    else:
        raise not_found(f"{where} does not exist")
    return sample_split(
        layout,
        _opener(root),
        kind="Local",
        rows=rows,
        max_row_bytes=max_row_bytes,
        full_read_bytes=FULL_READ_BYTES,
        where=where,
    )
