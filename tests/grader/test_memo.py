"""The memo of values derived from a plan's objects: found by identity only, never for another object."""

from __future__ import annotations

import numpy as np

from grader.memo import Memo


def test_a_value_is_made_once_per_object_and_extra() -> None:
    memo: Memo[float] = Memo(8)
    a = np.arange(3.0)
    made: list[str] = []

    def make(label: str) -> float:
        made.append(label)
        return float(a.sum())

    assert memo.get((a,), 1, lambda: make("first")) == 3.0
    assert memo.get((a,), 1, lambda: make("again")) == 3.0
    assert memo.get((a,), 2, lambda: make("other extra")) == 3.0
    assert made == ["first", "other extra"]


def test_an_equal_but_different_object_gets_its_own_value() -> None:
    memo: Memo[str] = Memo(8)
    a, b = np.zeros(2), np.zeros(2)
    assert memo.get((a,), None, lambda: "a") == "a"
    assert memo.get((b,), None, lambda: "b") == "b"
    assert memo.get((a, b), None, lambda: "a, b") == "a, b"
    assert memo.get((b, a), None, lambda: "b, a") == "b, a"


def test_an_entry_keeps_its_objects_so_no_id_is_reused_for_another() -> None:
    memo: Memo[int] = Memo(1000)
    seen = set()
    for k in range(200):  # without the entries holding them, CPython would hand out the same ids again
        obj = np.full(3, float(k))
        assert memo.get((obj,), None, lambda k=k: k) == k
        seen.add(id(obj))
    assert len(seen) == 200


def test_the_oldest_entries_go_first_past_the_size() -> None:
    memo: Memo[str] = Memo(2)
    a, b, c = object(), object(), object()
    memo.get((a,), None, lambda: "a")
    memo.get((b,), None, lambda: "b")
    memo.get((c,), None, lambda: "c")
    assert len(memo) == 2
    assert memo.get((a,), None, lambda: "a again") == "a again"
    assert memo.get((c,), None, lambda: "c again") == "c"


def test_none_is_a_value_like_any_other() -> None:
    memo: Memo[None] = Memo(4)
    calls: list[int] = []
    a = object()
    memo.get((a,), None, lambda: calls.append(1))
    memo.get((a,), None, lambda: calls.append(2))
    assert calls == [1]
