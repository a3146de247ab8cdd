"""The smallest failing example: a failing trial made as small and as round as it can be while it still fails.

A student checks a mistake by hand on a 2-vector with inputs like 0.3 and -1.2,
not on a 4 x 6 matrix of 17-digit numbers. Starting from the failing trial with
the smallest arguments, this tries the same draw with the smallest dimensions
and with inputs rounded to one or two decimals, calls the student's function on
each (simplest first), and keeps the first on which the output still fails.
Every candidate is a valid trial: rounding that lands near a kink (ReLU at 0) or
breaks finiteness is skipped, and a fixed case keeps the values it sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from grader.sampling import CompiledQuestion, Trial, simpler_trial

# (smallest dimensions?, decimals to round the inputs to), simplest first
STEPS: tuple[tuple[bool, int | None], ...] = ((True, 1), (True, 2), (True, None), (False, 1), (False, 2))


@dataclass(frozen=True)
class Example:
    """A failing call shown in full: the arguments, the expected value and what the student returned."""

    trial: int  # the trial it was made from (its seed and index)
    dims: Mapping[str, int]
    inputs: Mapping[str, np.ndarray]  # the question's arguments, as the student's function received them
    expected: np.ndarray
    got: np.ndarray
    rounded: int | None = None  # the decimals the inputs were rounded to, if they were
    shrunk: bool = False  # the dimensions were made smaller than the failing trial's


Call = Callable[[Trial], "np.ndarray | None"]  # the student's value of one output on a trial, None if the call failed
Fails = Callable[[np.ndarray, Trial], bool]


def smallest_example(cq: CompiledQuestion, base: Trial, got: np.ndarray, output: int, call: Call,
                     fails: Fails) -> Example:
    """The simplest variant of the failing trial ``base`` on which ``output`` still fails (else ``base`` itself)."""
    for smallest, decimals in STEPS:
        t = simpler_trial(cq, base, smallest, decimals)
        if t is None or _same(t, base):
            continue
        value = call(t)
        if value is None:  # the call raised or hung on the simpler input: show the original failure
            break
        if fails(value, t):
            return Example(base.index, dict(t.dims), dict(t.args), t.expected[output], value,
                           decimals, dict(t.dims) != dict(base.dims))
    return Example(base.index, dict(base.dims), dict(base.args), base.expected[output], got)


def _same(a: Trial, b: Trial) -> bool:
    return dict(a.dims) == dict(b.dims) and all(np.array_equal(a.args[k], b.args[k]) for k in a.args)
