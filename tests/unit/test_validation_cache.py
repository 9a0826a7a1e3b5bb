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


def test_jobs_asking_while_the_question_is_answered_wait_for_that_answer() -> None:
    """A burst of new jobs naming one dataset samples it once, not once per worker thread."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    started = threading.Event()

    class Slow(Counting):
        def __call__(self, source: DatasetSource, **options: Any) -> Any:
            started.set()
            time.sleep(0.5)  # the others arrive while this one is answering
            return super().__call__(source, **options)

    validate = Slow()
    cache = ValidationCache(validate)
    with ThreadPoolExecutor(8) as pool:
        reports = list(pool.map(lambda _: cache(SOURCE, methods=["SFT"]), range(8)))
    assert validate.calls == 1
    assert all(r.verdict("SFT") == reports[0].verdict("SFT") for r in reports)
    # An error is shared with those who waited for it, and not remembered.
    validate.fail = True
    with ThreadPoolExecutor(4) as pool:
        failures = [pool.submit(cache, SOURCE, methods=["KTO"]) for _ in range(4)]
        assert all(isinstance(f.exception(), SpecError) for f in failures)
    assert validate.calls == 2
