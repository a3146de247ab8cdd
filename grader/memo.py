"""Values derived from the objects of a plan, kept while a batch uses them, found by the objects' identity.

A batch grades every submission against one plan: the same trials, the same expected
values, the same compiled questions. Whatever the grader derives from those alone (a
question's encoded calls, a trial's simpler variants, the value a mistaken formula
gives on a trial, the expected side of a comparison) is the same for every student,
so it is worked out once. The student's own values never go into a memo.

The objects are not hashable (they hold arrays), so they are found by ``id``. Each
entry holds its objects, so no id in a key can be reused by another object while the
entry lives: an entry can never be found for the wrong object. The oldest entries go
first once ``size`` are held: tests and long sessions draw many plans.
"""

from __future__ import annotations

from typing import Callable, Generic, Hashable, TypeVar

V = TypeVar("V")


class Memo(Generic[V]):
    """``get(objects, extra, make)``: ``make()`` once per identity of ``objects`` and value of ``extra``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._held: dict[tuple[Hashable, ...], tuple[tuple[object, ...], V]] = {}

    def get(self, objects: tuple[object, ...], extra: Hashable, make: Callable[[], V]) -> V:
        key = (len(objects), *map(id, objects), extra)
        hit = self._held.get(key)
        if hit is not None:
            return hit[1]
        value = make()
        if len(self._held) >= self.size:
            del self._held[next(iter(self._held))]
        self._held[key] = (objects, value)
        return value

    def __len__(self) -> int:
        return len(self._held)
