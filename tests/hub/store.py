"""On-disk repository store: content-addressed blobs plus one JSON document per repository.

Layout under ``data_dir``::

    blobs/ab/abcdef...        file contents, named by SHA-256
    repos/{type}/{ns}/{name}.json
                              visibility, refs (branches, tags) and every commit with its full file map

Commits snapshot the whole file map, so any revision can be read without replaying history; the repositories
a test builds are small. Tests may read the store directly (``read_file``, ``list_files``, ``commits``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tests.hub.models import RepoType

LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
"""Files at least this large go through LFS, as on the Hub."""

# The Hub's default .gitattributes (abridged to the patterns that matter for models and datasets).
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gguf", "*.gz", "*.h5", "*.joblib",
        "*.lfs.*", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet",
        "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*",
        "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*",
    )
)  # fmt: skip
_LFS_SUFFIXES = tuple(
    line.split()[0][1:]
    for line in DEFAULT_GITATTRIBUTES.splitlines()
    if line.startswith("*.") and "*" not in line[2:]
)
_COMMIT_HASH = re.compile(r"^[0-9a-f]{40}$")
_SAFETENSORS_DTYPES = {
    "F64",
    "F32",
    "F16",
    "BF16",
    "I64",
    "I32",
    "I16",
    "I8",
    "U8",
    "BOOL",
    "F8_E4M3",
    "F8_E5M2",
}


class StoreError(Exception):
    """A request the store refuses; ``code`` is the Hub's ``X-Error-Code`` and ``status`` the HTTP status."""

    def __init__(
        self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def now_iso() -> str:
    """Current UTC time in the Hub's format (milliseconds, ``Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{datetime.now(UTC).microsecond // 1000:03d}Z"


def git_blob_oid(data: bytes) -> str:
    """Git's SHA-1 of a blob, the Hub's ``oid`` (and ``ETag``) of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file committed in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class FileEntry:
    """One file of a commit."""

    path: str
    """Path in the repo."""
    sha256: str
    """SHA-256 of the content (the blob name)."""
    size: int
    """Size in bytes."""
    lfs: bool
    """Stored through LFS."""
    git_oid: str
    """Git blob id: of the content, or of the LFS pointer for LFS files."""

    @classmethod
    def regular(cls, path: str, data: bytes, sha256: str) -> FileEntry:
        """Entry of a file committed inline."""
        return cls(path, sha256, len(data), False, git_blob_oid(data))

    @classmethod
    def large(cls, path: str, sha256: str, size: int) -> FileEntry:
        """Entry of a file stored through LFS."""
        return cls(path, sha256, size, True, git_blob_oid(lfs_pointer(sha256, size)))

    @property
    def etag(self) -> str:
        """What the Hub sends as (linked) ETag: the SHA-256 for LFS files, the git oid otherwise."""
        return self.sha256 if self.lfs else self.git_oid


@dataclass
class CommitRecord:
    """A commit: metadata plus the full file map after it."""

    id: str
    """40-hex commit id."""
    parent: str | None
    """Parent commit id (first commit: ``None``)."""
    title: str
    """Summary line."""
    message: str
    """Description."""
    author: str
    """User name (``system`` for the initial commit)."""
    date: str
    """ISO time."""
    files: dict[str, FileEntry]
    """Path → entry, after this commit."""


@dataclass
class Repo:
    """A repository and its history."""

    repo_type: RepoType
    repo_id: str
    private: bool
    created_at: str
    gated: str | bool = False
    access: list[str] = field(default_factory=list)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, CommitRecord] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        """Owner namespace."""
        return self.repo_id.split("/", 1)[0]

    def to_json(self) -> dict[str, Any]:
        """Serialisable form."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Repo:
        """Inverse of :meth:`to_json`."""
        commits = {}
        for cid, raw in data.pop("commits").items():
            files = {path: FileEntry(**entry) for path, entry in raw.pop("files").items()}
            commits[cid] = CommitRecord(files=files, **raw)
        return cls(commits=commits, **data)


@dataclass
class CommitOp:
    """One operation of a commit, already decoded by the route."""

    kind: str
    """``file`` (``data`` set), ``lfsFile`` (``sha256``, ``size`` set), ``deletedFile``, ``deletedFolder``."""
    path: str
    """Path in the repo."""
    data: bytes | None = None
    sha256: str | None = None
    size: int | None = None


class RepoStore:
    """Thread-safe store of repositories under ``data_dir``.

    Parameters
    ----------
    data_dir : Path
        Root of the on-disk store; created if missing, reloaded if it already holds repositories.
    lfs_threshold : int
        Size from which any file is stored through LFS.
    """

    def __init__(self, data_dir: Path, lfs_threshold: int = LFS_SIZE_THRESHOLD) -> None:
        self.data_dir = Path(data_dir)
        self.lfs_threshold = lfs_threshold
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], Repo] = {}
        (self.data_dir / "blobs").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "repos").mkdir(parents=True, exist_ok=True)
        for path in (self.data_dir / "repos").glob("*/*/*.json"):
            repo = Repo.from_json(json.loads(path.read_text()))
            self._repos[(repo.repo_type, repo.repo_id)] = repo

    # ---- blobs ----------------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        """Path of the blob named ``sha256``."""
        return self.data_dir / "blobs" / sha256[:2] / sha256

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        """Whether the blob exists (and has ``size`` bytes, when given)."""
        path = self.blob_path(sha256)
        return path.is_file() and (size is None or path.stat().st_size == size)

    def put_blob(self, data: bytes) -> str:
        """Store ``data``; return its SHA-256."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha)
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
                tmp.write(data)
            os.replace(tmp.name, path)
        return sha

    def read_range(self, sha256: str, start: int, end: int) -> Iterator[bytes]:
        """Yield bytes ``start..end`` (inclusive) of a blob in 1 MiB chunks."""
        with self.blob_path(sha256).open("rb") as fh:
            fh.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = fh.read(min(left, 1 << 20))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    # ---- repositories ---------------------------------------------------------------------------

    def _save(self, repo: Repo) -> None:
        path = self.data_dir / "repos" / repo.repo_type / f"{repo.repo_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(repo.to_json()))
        os.replace(tmp, path)

    def get(self, repo_type: str, repo_id: str) -> Repo | None:
        """Return the repository, or ``None``."""
        with self._lock:
            return self._repos.get((repo_type, repo_id))

    def repos(self) -> list[Repo]:
        """All repositories."""
        with self._lock:
            return list(self._repos.values())

    def create_repo(self, repo_type: RepoType, repo_id: str, *, private: bool = False) -> Repo:
        """Create a repository with the Hub's initial commit (a ``.gitattributes`` by ``system``).

        Raises
        ------
        StoreError
            409 when it already exists.
        """
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                raise StoreError(409, None, "You already created this model repo")
            repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, created_at=now_iso())
            self._repos[(repo_type, repo_id)] = repo
            self._apply(
                repo,
                "main",
                [CommitOp("file", ".gitattributes", data=DEFAULT_GITATTRIBUTES.encode())],
                title="initial commit",
                message="",
                author="system",
                create_branch=True,
            )
            return repo

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        """Delete a repository (its blobs stay; they are content-addressed)."""
        with self._lock:
            if self._repos.pop((repo_type, repo_id), None) is None:
                raise StoreError(404, "RepoNotFound", "Repository not found")
            (self.data_dir / "repos" / repo_type / f"{repo_id}.json").unlink(missing_ok=True)

    def update_settings(
        self, repo_type: str, repo_id: str, *, private: bool | None = None, gated: str | bool | None = None
    ) -> None:
        """Change privacy or gating (``gated``: ``"auto"``, ``"manual"`` or ``False``)."""
        with self._lock:
            repo = self._require(repo_type, repo_id)
            if private is not None:
                repo.private = private
            if gated is not None:
                repo.gated = gated
            self._save(repo)

    def grant_access(self, repo_type: str, repo_id: str, user: str) -> None:
        """Let ``user`` download files of a gated repository."""
        with self._lock:
            repo = self._require(repo_type, repo_id)
            repo.access.append(user)
            self._save(repo)

    def _require(self, repo_type: str, repo_id: str) -> Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise StoreError(404, "RepoNotFound", "Repository not found")
        return repo

    # ---- revisions ------------------------------------------------------------------------------

    def resolve(self, repo: Repo, revision: str) -> CommitRecord:
        """Resolve a branch, tag or commit id (full or unique prefix of 7+ chars).

        Raises
        ------
        StoreError
            404 ``RevisionNotFound``.
        """
        with self._lock:
            cid = repo.branches.get(revision) or repo.tags.get(revision)
            if cid is None and revision in repo.commits:
                cid = revision
            if cid is None and len(revision) >= 7 and re.fullmatch(r"[0-9a-f]+", revision):
                matches = [c for c in repo.commits if c.startswith(revision)]
                cid = matches[0] if len(matches) == 1 else None
            if cid is None:
                raise StoreError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return repo.commits[cid]

    def history(self, repo: Repo, revision: str) -> list[CommitRecord]:
        """Commits reachable from ``revision``, newest first."""
        with self._lock:
            commit: CommitRecord | None = self.resolve(repo, revision)
            out = []
            while commit is not None:
                out.append(commit)
                commit = repo.commits.get(commit.parent) if commit.parent else None
            return out

    def create_branch(self, repo: Repo, branch: str, starting_point: str | None = None) -> None:
        """Create ``branch`` at ``starting_point`` (head of ``main`` by default); 409 if it exists."""
        with self._lock:
            if branch in repo.branches:
                raise StoreError(409, None, f"Reference already exists: refs/heads/{branch}")
            repo.branches[branch] = self.resolve(repo, starting_point or "main").id
            self._save(repo)

    def delete_branch(self, repo: Repo, branch: str) -> None:
        """Delete ``branch``; ``main`` cannot be deleted."""
        with self._lock:
            if branch not in repo.branches:
                raise StoreError(404, "RevisionNotFound", f"Invalid rev id: {branch}")
            if branch == "main":
                raise StoreError(403, None, "Cannot delete the default branch")
            del repo.branches[branch]
            self._save(repo)

    def create_tag(self, repo: Repo, tag: str, revision: str) -> None:
        """Tag ``revision``; 409 if the tag exists."""
        with self._lock:
            if tag in repo.tags:
                raise StoreError(409, None, f"Tag {tag} already exists")
            repo.tags[tag] = self.resolve(repo, revision).id
            self._save(repo)

    # ---- commits --------------------------------------------------------------------------------

    def upload_mode(self, path: str, size: int, sample: bytes) -> str:
        """``lfs`` or ``regular``, as the Hub decides it from .gitattributes, size and binary content."""
        if size >= self.lfs_threshold or path.endswith(_LFS_SUFFIXES) or b"\0" in sample:
            return "lfs" if size > 0 else "regular"
        return "regular"

    def commit(
        self,
        repo: Repo,
        branch: str,
        ops: Iterable[CommitOp],
        *,
        title: str,
        message: str,
        author: str,
        parent_commit: str | None = None,
    ) -> CommitRecord:
        """Apply ``ops`` on top of ``branch`` and advance it.

        Raises
        ------
        StoreError
            404 for an unknown branch or a deleted path that does not exist, 412 when ``parent_commit`` is
            not the head, 422 when an LFS file was never uploaded.
        """
        with self._lock:
            if branch not in repo.branches:
                raise StoreError(404, "RevisionNotFound", f"Invalid rev id: {branch}")
            if parent_commit is not None and repo.branches[branch] != parent_commit:
                raise StoreError(412, None, "A commit has happened since. Please refresh and try again.")
            return self._apply(repo, branch, list(ops), title=title, message=message, author=author)

    def _apply(
        self,
        repo: Repo,
        branch: str,
        ops: list[CommitOp],
        *,
        title: str,
        message: str,
        author: str,
        create_branch: bool = False,
    ) -> CommitRecord:
        parent = None if create_branch else repo.commits[repo.branches[branch]]
        files = dict(parent.files) if parent else {}
        for op in ops:
            if op.kind == "file":
                assert op.data is not None
                sha = self.put_blob(op.data)
                if self.upload_mode(op.path, len(op.data), op.data[:512]) == "lfs":
                    files[op.path] = FileEntry.large(op.path, sha, len(op.data))
                else:
                    files[op.path] = FileEntry.regular(op.path, op.data, sha)
            elif op.kind == "lfsFile":
                assert op.sha256 is not None
                if not self.has_blob(op.sha256, op.size):
                    raise StoreError(422, None, f"LFS file {op.path} ({op.sha256}) was not uploaded")
                size = self.blob_path(op.sha256).stat().st_size
                files[op.path] = FileEntry.large(op.path, op.sha256, size)
            elif op.kind == "deletedFile":
                if op.path not in files:
                    raise StoreError(404, "EntryNotFound", f"A file with this name doesn't exist: {op.path}")
                del files[op.path]
            elif op.kind == "deletedFolder":
                prefix = op.path.rstrip("/") + "/"
                doomed = [p for p in files if p.startswith(prefix)]
                if not doomed:
                    raise StoreError(
                        404, "EntryNotFound", f"A folder with this name doesn't exist: {op.path}"
                    )
                for p in doomed:
                    del files[p]
        seed = f"{repo.repo_id}\0{branch}\0{parent.id if parent else ''}\0{title}\0{time.time_ns()}"
        record = CommitRecord(
            id=hashlib.sha1(seed.encode()).hexdigest(),
            parent=parent.id if parent else None,
            title=title,
            message=message,
            author=author,
            date=now_iso(),
            files=files,
        )
        repo.commits[record.id] = record
        repo.branches[branch] = record.id
        self._save(repo)
        return record

    # ---- reading (also the test-facing API) -------------------------------------------------------------

    def read_file(self, repo_type: str, repo_id: str, path: str, revision: str = "main") -> bytes:
        """Content of ``path`` at ``revision``.

        Raises
        ------
        StoreError
            When the repository, revision or file does not exist.
        """
        repo = self._require(repo_type, repo_id)
        entry = self.resolve(repo, revision).files.get(path)
        if entry is None:
            raise StoreError(404, "EntryNotFound", f"{path} not found")
        return self.blob_path(entry.sha256).read_bytes()

    def list_files(self, repo_type: str, repo_id: str, revision: str = "main") -> list[str]:
        """Sorted file paths at ``revision``."""
        repo = self._require(repo_type, repo_id)
        return sorted(self.resolve(repo, revision).files)

    def commits(self, repo_type: str, repo_id: str, revision: str = "main") -> list[CommitRecord]:
        """History of ``revision``, newest first."""
        return self.history(self._require(repo_type, repo_id), revision)

    def branches(self, repo_type: str, repo_id: str) -> dict[str, str]:
        """Branch name → head commit id."""
        return dict(self._require(repo_type, repo_id).branches)

    # ---- derived metadata -----------------------------------------------------------------------

    def card_data(self, commit: CommitRecord) -> dict[str, Any] | None:
        """YAML front matter of README.md, or ``None``."""
        entry = commit.files.get("README.md")
        if entry is None:
            return None
        return parse_front_matter(self.blob_path(entry.sha256).read_text(errors="replace"))

    def model_config(self, commit: CommitRecord) -> dict[str, Any] | None:
        """The subset of config.json the Hub exposes as ``config``."""
        entry = commit.files.get("config.json")
        if entry is None:
            return None
        try:
            raw = json.loads(self.blob_path(entry.sha256).read_bytes())
        except ValueError:
            return None
        if not isinstance(raw, dict):
            return None
        return {k: raw[k] for k in ("architectures", "model_type") if k in raw}

    def safetensors_parameters(self, commit: CommitRecord) -> dict[str, int] | None:
        """Parameters per dtype over the root-level ``*.safetensors`` files; ``None`` if none parse."""
        totals: dict[str, int] = {}
        found = False
        for path, entry in commit.files.items():
            if "/" in path or not path.endswith(".safetensors"):
                continue
            counts = safetensors_counts(self.blob_path(entry.sha256))
            if counts is None:
                continue
            found = True
            for dtype, n in counts.items():
                totals[dtype] = totals.get(dtype, 0) + n
        return totals if found else None


def parse_front_matter(text: str) -> dict[str, Any] | None:
    """Parse a ``---``-delimited YAML block at the top of ``text``.

    Raises
    ------
    yaml.YAMLError
        When the block is not valid YAML.
    """
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
    if match is None:
        return None
    data = yaml.safe_load(match.group(1))
    return data if isinstance(data, dict) else None


def safetensors_counts(path: Path) -> dict[str, int] | None:
    """Parameters per dtype from a safetensors header; ``None`` when the file is not safetensors."""
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return None
        (size,) = struct.unpack("<Q", head)
        if size > 100 * 1024 * 1024:
            return None
        try:
            header = json.loads(fh.read(size))
        except ValueError:
            return None
    counts: dict[str, int] = {}
    for name, info in header.items():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        dtype = info.get("dtype")
        if dtype not in _SAFETENSORS_DTYPES:
            return None
        n = 1
        for dim in info.get("shape", []):
            n *= int(dim)
        counts[dtype] = counts.get(dtype, 0) + n
    return counts


def is_commit_hash(revision: str) -> bool:
    """Whether ``revision`` is a full 40-hex commit id."""
    return _COMMIT_HASH.fullmatch(revision) is not None
