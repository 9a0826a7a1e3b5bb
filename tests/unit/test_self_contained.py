"""The repository stands on its own: no file points at material outside it.

A fresh clone has nothing beside it, so a test, the demo, a doc or a code comment that reads or cites a
sibling folder (the team's notes, datasets, research) breaks or misleads there. The project ships its own
data (tests/data/datasets) and its own design doc (docs/architecture.md) and states measured facts inline.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

OUTSIDE = re.compile(
    r"\.\./shared\b"  # a relative path to a sibling folder
    r"|\bshared/(?:research|datasets|ARCHITECTURE|STYLE)"  # the team's folders, however reached
    r"|\bparents?(?:\[\d+\])?\s*/\s*[\"']shared[\"']"  # ROOT.parent / "shared" in Python
)


def repository_files() -> list[Path]:
    """Tracked files, plus new files git does not ignore (so a mistake fails before it is committed)."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (an sdist or a copy): nothing to list")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    paths = [ROOT / name for name in listed.split("\0") if name]
    this = Path(__file__).resolve()  # its examples of what is refused would match
    return [p for p in paths if p.is_file() and not p.is_symlink() and p.resolve() != this]


def test_pattern_catches_the_ways_a_file_points_outside() -> None:
    for text in (
        "see ../shared/ARCHITECTURE.md",
        "DATASETS = ROOT.parent / 'shared' / 'datasets'",
        'ROOT.parents[1] / "shared"',
        "(shared/research/gpu-throughput.md)",
        "copy from /work/shared/datasets",
    ):
        assert OUTSIDE.search(text), text
    for text in ("the shared prefix", "n_shared_experts", "output: {repo: tester/shared}", "shared by tests"):
        assert not OUTSIDE.search(text), text


def test_no_file_points_outside_the_repository() -> None:
    files = repository_files()
    assert any(p.name == "README.md" for p in files) and len(files) > 50  # the listing really ran
    offending = []
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="ignore")
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE.search(line):
                offending.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not offending, "files that point outside the repository:\n" + "\n".join(offending)
