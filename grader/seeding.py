"""Random generators keyed by what they draw, so each draw is reproducible on its own.

A draw is named by a tuple of parts (the seed, the problem, the function, the
trial, the attempt, the parameter variant and, for an input, its name). The
tuple's ``repr``, a Python literal that no other tuple of ints and strings
shares, is hashed with BLAKE2b into the seed of a PCG64 generator (NumPy's
default bit generator). The same parts give the same numbers in every run, on
every machine; a draw named differently (another input, another question) gets
an unrelated stream, so adding one never changes the others.

Building a ``SeedSequence`` per draw costs about 20 µs, and a grading plan makes
thousands of draws; hashing the parts and handing the words to PCG64 through the
``ISeedSequence`` interface costs about 2 µs. A trial draws each input from a
child of one key, so ``generators`` writes that key's text once for all of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.random.bit_generator import ISeedSequence

Part = int | str

# The word types a seed sequence is asked for (by type, as PCG64 asks, or by dtype),
# read little-endian on every machine, so that big- and little-endian machines draw
# the same numbers.
_LITTLE_ENDIAN = {key: np.dtype(little) for word, little in ((np.uint32, "<u4"), (np.uint64, "<u8"))
                  for key in (word, np.dtype(word))}


class _HashedSeed(bytes, ISeedSequence):
    """A draw's key text, whose seed words are hashed from it: up to 64 bytes, twice what PCG64 asks for.

    It is the bytes themselves, so making one per draw runs no Python ``__init__``.
    """

    __slots__ = ()

    def generate_state(self, n_words: int, dtype: type = np.uint32) -> np.ndarray:
        little = _LITTLE_ENDIAN[dtype if dtype in _LITTLE_ENDIAN else np.dtype(dtype)]
        words = np.frombuffer(hashlib.blake2b(self, digest_size=n_words * little.itemsize).digest(), little)
        return words if little.isnative else words.astype(dtype)


@dataclass(frozen=True, slots=True)
class DrawKey:
    """The name of one draw; ``generator()`` gives the stream that belongs to it alone."""

    parts: tuple[Part, ...]

    def child(self, *parts: Part) -> DrawKey:
        """The key of a draw named by these parts after this key's own."""
        return DrawKey(self.parts + parts)

    def generator(self) -> np.random.Generator:
        return _generator(repr(self.parts))

    def generators(self, children: Sequence[Part]) -> list[np.random.Generator]:
        """The generator of ``self.child(part)`` for each part of ``children``."""
        if not self.parts:
            return [self.child(part).generator() for part in children]
        head = repr((*self.parts, None))[:-5]  # "(1, 'p', " : a child's text is this, its part and ")"
        return [_generator(f"{head}{part!r})") for part in children]


def _generator(text: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(_HashedSeed(text.encode())))
