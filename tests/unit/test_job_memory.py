"""When a pass may start from the watch's copy of a FineTuneJob instead of a fresh GET (`JobMemory.current`).

A pass that started from a copy older than the status this process last wrote would act on a stale status
(submit twice, say a step twice), so such a copy is read afresh; every other copy saves the GET.
"""

from __future__ import annotations

import pytest

from finetune_operator.lifecycle.reconcile import JobMemory


def body(version: str | None) -> dict[str, object]:
    return {"metadata": {"resourceVersion": version} if version else {}}


def test_a_first_look_starts_from_the_watch_copy() -> None:
    # Nothing written by this process yet: the watch (begun after any earlier operator stopped) has it all.
    assert JobMemory().current(body("41"))


@pytest.mark.parametrize(
    ("last", "seen", "current"),
    [
        ("100", "100", True),  # the very version this process wrote
        ("100", "101", True),  # a user's edit after that write: it holds the write
        ("100", "1000", True),  # compared as numbers, not as text
        ("100", "99", False),  # a watch event from before the write (a tick wrote meanwhile)
        ("1000", "999", False),
        ("abc", "abd", False),  # not the API server's decimal form: only the same version will do
        ("abc", "abc", True),
        ("100", "0100", False),  # a leading zero is not canonical
    ],
)
def test_a_copy_is_current_when_it_is_not_older_than_the_last_write(
    last: str, seen: str, current: bool
) -> None:
    memory = JobMemory()
    memory.seen(last)
    assert memory.current(body(seen)) is current


def test_a_copy_without_a_version_is_always_read_afresh() -> None:
    assert not JobMemory().current(body(None))
