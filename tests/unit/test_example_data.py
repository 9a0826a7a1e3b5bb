"""The example datasets on disk are exactly what tests/example_data.py writes (regenerate, never hand-edit)."""

from __future__ import annotations

import pytest

from tests.example_data import DATASETS, FILES, render


def test_the_folder_holds_every_file_and_nothing_else() -> None:
    assert sorted(p.name for p in DATASETS.iterdir()) == sorted(FILES)


@pytest.mark.parametrize("name", sorted(FILES))
def test_file_matches_its_generator(name: str) -> None:
    on_disk = (DATASETS / name).read_text(encoding="utf-8")
    assert on_disk == render(name), f"run `python -m tests.example_data` to rewrite {name}"
