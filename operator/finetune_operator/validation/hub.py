"""Hub datasets, read through `huggingface_hub` only: the file list of the revision, then byte ranges.

`HfApi.list_repo_tree` gives the files (and sizes) of the revision; the README's `configs` header and
the file names pick the config's split; `HfFileSystem` serves Parquet footers, the first row group and
the first lines of JSON/CSV files through HTTP range requests. Nothing is downloaded whole unless small.
When the revision has no data files we read, the Hub's `refs/convert/parquet` branch is tried.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO, cast

from finetune_operator.hub import HubSubject, hub_errors
from finetune_operator.validation.errors import invalid
from finetune_operator.validation.layout import DataFile, Layout, is_data_file, resolve
from finetune_operator.validation.readers import Opener
from finetune_operator.validation.sampling import Sample, sample_split

FULL_READ_BYTES = 16 * 1024 * 1024
"""Hub JSON/CSV files up to this size are read whole for an exact row count."""
PARQUET_BRANCH = "refs/convert/parquet"


def _list_files(api: Any, repo_id: str, revision: str | None) -> list[DataFile]:
    from huggingface_hub.hf_api import RepoFile

    entries = api.list_repo_tree(repo_id, recursive=True, revision=revision, repo_type="dataset")
    return [DataFile(e.path, e.size) for e in entries if isinstance(e, RepoFile)]


def _read_readme(fs: Any, repo_id: str, revision: str | None, files: list[DataFile]) -> str | None:
    if not any(f.path == "README.md" for f in files):
        return None
    with fs.open(f"datasets/{repo_id}/README.md", "rb", revision=revision) as handle:
        return cast(bytes, handle.read(1024 * 1024)).decode("utf-8", errors="replace")


def sample_hub(
    repo_id: str,
    *,
    config: str | None,
    split: str,
    revision: str | None,
    token: str | None,
    endpoint: str | None,
    rows: int,
    max_row_bytes: int,
) -> Sample:
    """Sample a Hub dataset's split.

    Raises
    ------
    SpecError
        `DatasetNotFound` for a missing (or private, without token) repo, revision, config or split;
        `DatasetInvalid` for unreadable data.
    RetryLater
        For Hub errors that may pass (5xx, 429, timeouts).
    """
    from huggingface_hub import HfApi, HfFileSystem

    where = f"dataset `{repo_id}`"
    with hub_errors(f"reading {where}", HubSubject("dataset", repo_id, revision, token_given=bool(token))):
        # Never fall back to a token of the environment: only the job's own token may open private data.
        api = HfApi(endpoint=endpoint, token=token or False)
        fs = HfFileSystem(endpoint=endpoint, token=token or False, skip_instance_cache=True)
        files = _list_files(api, repo_id, revision)
        used_revision = revision
        layout: Layout | None = None
        if any(is_data_file(f.path) for f in files):
            readme = _read_readme(fs, repo_id, revision, files)
            layout = resolve(files, readme=readme, config=config, split=split, where=where)
        else:
            layout = _parquet_branch_layout(
                api, repo_id, config=config, split=split, where=where, files=files
            )
            used_revision = PARQUET_BRANCH

        def open_file(f: DataFile) -> Opener:
            path = f"datasets/{repo_id}/{f.path}"
            return lambda: cast(BinaryIO, fs.open(path, "rb", revision=used_revision, block_size=1 << 20))

        sample = sample_split(
            layout,
            cast(Callable[[DataFile], Opener], open_file),
            kind="Hub",
            rows=rows,
            max_row_bytes=max_row_bytes,
            full_read_bytes=FULL_READ_BYTES,
            where=where,
        )
    sample.revision = used_revision
    return sample


def _parquet_branch_layout(
    api: Any, repo_id: str, *, config: str | None, split: str, where: str, files: list[DataFile]
) -> Layout:
    from huggingface_hub.errors import RevisionNotFoundError

    try:
        converted = _list_files(api, repo_id, PARQUET_BRANCH)
    except RevisionNotFoundError:
        converted = []
    if not converted:
        listed = ", ".join(f"`{f.path}`" for f in files[:10]) or "no files"
        raise invalid(
            f"{where} has no data files (Parquet, JSON, JSON Lines or CSV) and no Parquet conversion; "
            f"it has {listed}"
        )
    return resolve(converted, readme=None, config=config, split=split, where=where, parquet_branch=True)
