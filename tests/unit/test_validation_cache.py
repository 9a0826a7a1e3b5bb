"""One dataset is validated once for the jobs that ask the same question of it, never across tokens, never
remembering an error, and only for a while."""

from __future__ import annotations

from typing import Any

import pytest

from finetune_operator.errors import SpecError
from finetune_operator.validation import inspect_dataset
from finetune_operator.validation.cache import ValidationCache
from finetune_training.plan import DatasetSource
from tests.example_data import DATASETS

SOURCE = DatasetSource(name=str(DATASETS / "alpaca.json"), conversion="Alpaca")


class Counting:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    def __call__(self, source: DatasetSource, **options: Any) -> Any:
        self.calls += 1
        if self.fail:
            raise SpecError("DatasetNotFound", "not there yet")
        return inspect_dataset(source, **options)


def test_the_same_question_is_answered_once_per_token_and_ttl() -> None:
    now = [0.0]
    validate = Counting()
    cache = ValidationCache(validate, ttl_seconds=60, clock=lambda: now[0])
    first = cache(SOURCE, token="hf_a", methods=["SFT"], max_length=1024)
    again = cache(SOURCE, token="hf_a", methods=["SFT"], max_length=1024)
    assert validate.calls == 1 and again.verdict("SFT") == first.verdict("SFT")
    cache(SOURCE, token="hf_b", methods=["SFT"], max_length=1024)  # someone else's access: asked again
    cache(SOURCE, token="hf_a", methods=["SFT"], max_length=2048)  # another question
    assert validate.calls == 3
    now[0] = 61.0
    cache(SOURCE, token="hf_a", methods=["SFT"], max_length=1024)  # expired: the data may have changed
    assert validate.calls == 4


def test_errors_are_not_remembered_and_the_memo_is_bounded() -> None:
    validate = Counting()
    cache = ValidationCache(validate, size=2)
    validate.fail = True
    for _ in range(2):
        with pytest.raises(SpecError):
            cache(SOURCE, methods=["SFT"])
    validate.fail = False
    cache(SOURCE, methods=["SFT"])  # published since: seen at once
    assert validate.calls == 3
    for length in (256, 512, 1024):
        cache(SOURCE, methods=["SFT"], max_length=length)
    cache(SOURCE, methods=["SFT"])  # evicted by the three newer questions
    assert validate.calls == 7
