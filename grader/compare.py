"""Comparing a student's output with the expected value, in stages, into result objects.

The stages stop at the first that fails, and each says what it found in words a
student can act on: shape (checked before any arithmetic, so nothing is ever
broadcast), then finiteness, then values within ``|got - expected| <= atol +
rtol * |expected|``. A shape that differs from the expected one only by axes of
size 1 (a ``(K, 1)`` column for a ``(K,)`` vector) is accepted with a warning
unless the question is ``strict``.

``compare_positive_affine`` judges the losses of INTERFACE.md section 1.4: the
answer may be ``c * expected + d`` with one constant ``c > 0`` over all examples
and a ``d`` that depends only on the example, never on the parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from grader.memo import Memo
from grader.spec import Tolerance


@dataclass(frozen=True)
class Comparison:
    """The verdict on one output of one trial, with the numbers of the tolerance report."""

    passed: bool
    message: str  # why it failed, for the student; empty when it passed
    warnings: tuple[str, ...] = ()
    max_abs: float = math.nan
    max_rel: float = math.nan
    worst_index: tuple[int, ...] | None = None
    n_bad: int = 0
    size: int = 0
    got_value: float | None = None  # at the worst index
    expected_value: float | None = None

    @property
    def share_bad(self) -> float:
        return self.n_bad / self.size if self.size else 0.0


def compare_values(got: np.ndarray, expected: np.ndarray, tol: Tolerance, strict: bool = False) -> Comparison:
    """Compare one float64 output with its expected value: shape, then finiteness, then values."""
    got, warnings, shape_problem = _match_shape(got, expected, strict)
    if shape_problem:
        return Comparison(False, shape_problem, warnings, size=expected.size)
    if got.size == 0:
        return Comparison(True, "", warnings, 0.0, 0.0, size=0)
    err = np.abs(got - expected)
    max_abs = float(err.max())
    # the expected values are finite: a NaN or infinite error is a NaN or infinite answer (or an overflow)
    if not math.isfinite(max_abs) and not np.all(np.isfinite(got)):
        return Comparison(False, _nonfinite(got), warnings, math.inf, math.inf,
                          n_bad=int(np.count_nonzero(~np.isfinite(got))), size=got.size)
    return _values(got, expected, err, max_abs, tol, warnings)


@dataclass(frozen=True)
class Agreement:
    """Many trials of one output compared at once: those that did not pass, and the worst errors of the rest."""

    failed: tuple[int, ...]  # positions in the compared sequences
    max_abs: float  # over the trials that passed: NaN when none did, 0 when they were all empty
    max_rel: float


def compare_many(got: Sequence[np.ndarray], expected: Sequence[np.ndarray], tol: Tolerance) -> Agreement:
    """``compare_values`` on every pair of equal shapes at once: which fail it, and the numbers of the rest.

    A question's trials are judged in a few NumPy calls instead of a dozen each; only a
    trial that fails needs ``compare_values`` again, for the report it gives. The expected
    side is prepared once for the same arrays (a batch compares every submission with them).
    """
    if not got:
        return Agreement((), math.nan, math.nan)
    with np.errstate(all="ignore"):  # an overflowing difference is an infinite error, a subnormal ratio an infinite one
        return _agreement(got, _EXPECTED.get(tuple(expected), tol, lambda: _Expected.of(expected, tol)))


@dataclass(frozen=True)
class _Expected:
    """The expected values of many trials end to end, with what the comparison needs of them alone."""

    ends: np.ndarray  # where each trial's values end
    values: np.ndarray
    magnitude: np.ndarray
    allowed: np.ndarray  # atol + rtol * |expected|

    @staticmethod
    def of(expected: Sequence[np.ndarray], tol: Tolerance) -> _Expected:
        values = np.concatenate([a.reshape(-1) for a in expected])
        return _Expected(np.cumsum([a.size for a in expected]), values, np.abs(values), _allowed(values, tol))


_EXPECTED: Memo[_Expected] = Memo(1024)  # one per question output of a plan


def _agreement(got: Sequence[np.ndarray], expected: _Expected) -> Agreement:
    ends = expected.ends
    g = np.concatenate([a.reshape(-1) for a in got])
    err = np.abs(g - expected.values)
    bad = ~(err <= expected.allowed)  # a NaN error (NaN answer, overflow) is never within
    bad |= ~np.isfinite(g)
    failed: tuple[int, ...] = ()
    magnitude = expected.magnitude
    if bad.any():
        failed = tuple(int(t) for t in np.unique(np.searchsorted(ends, np.flatnonzero(bad), side="right")))
        if len(failed) == len(got):
            return Agreement(failed, math.nan, math.nan)
        keep = np.ones(err.size, dtype=bool)
        for t in failed:
            keep[(ends[t - 1] if t else 0):ends[t]] = False
        err, magnitude = err[keep], magnitude[keep]
    if not err.size:
        return Agreement(failed, 0.0, 0.0)
    # as in _values: an exact element has no error ratio
    rel = np.divide(err, magnitude, out=np.zeros_like(err), where=err != 0)
    return Agreement(failed, float(err.max()), float(rel.max()))


def within_tolerance(got: np.ndarray, expected: np.ndarray, tol: Tolerance) -> bool:
    """The plain rule, for callers that need only a yes: same shape, finite, every element within tolerance."""
    return (got.shape == expected.shape and bool(np.all(np.isfinite(got)))
            and bool(np.all(np.abs(got - expected) <= _allowed(expected, tol))))


def _allowed(expected: np.ndarray, tol: Tolerance) -> np.ndarray:
    return tol.atol + tol.rtol * np.abs(expected)


def _match_shape(got: np.ndarray, expected: np.ndarray, strict: bool) -> tuple[np.ndarray, tuple[str, ...], str]:
    if got.shape == expected.shape:
        return got, (), ""
    want, have = _shape_text(expected.shape), _shape_text(got.shape)
    squeezable = got.size == expected.size and _squeeze(got.shape) == _squeeze(expected.shape)
    if squeezable and not strict:
        return got.reshape(expected.shape), (f"returned shape {have} where {want} was expected; accepted, "
                                             f"but return {want}",), ""
    extra = " (only axes of size 1 differ, and this question is strict about shape)" if squeezable else ""
    return got, (), f"shape {have}, but the expected shape is {want}{extra}"


def _squeeze(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(s for s in shape if s != 1)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "() (a scalar)" if shape == () else str(shape)


def _nonfinite(got: np.ndarray) -> str:
    nan, inf = int(np.count_nonzero(np.isnan(got))), int(np.count_nonzero(np.isinf(got)))
    parts = [f"{nan} NaN" if nan else "", f"{inf} infinite" if inf else ""]
    return f"{' and '.join(p for p in parts if p)} value(s) among {got.size} (the expected values are all finite)"


def _values(got: np.ndarray, expected: np.ndarray, err: np.ndarray, max_abs: float, tol: Tolerance,
            warnings: tuple[str, ...]) -> Comparison:
    # every output of every trial comes through here: the fewest NumPy calls that give the full report
    magnitude = np.abs(expected)
    allowed = tol.atol + tol.rtol * magnitude
    n_bad = int(np.count_nonzero(err > allowed))
    exact = err == 0  # an exact element has no error ratio, even where the expected value or allowance is 0
    with np.errstate(all="ignore"):  # subnormal expected values overflow the ratios; inf is the honest answer
        rel = np.divide(err, magnitude, out=np.zeros_like(err), where=~exact)
        excess = np.divide(err, allowed, out=np.zeros_like(err), where=~exact)
    flat = int(np.argmax(excess))
    worst = tuple(int(i) for i in np.unravel_index(flat, got.shape)) if got.ndim else ()
    g, e = float(got.flat[flat]), float(expected.flat[flat])
    message = "" if not n_bad else _value_message(n_bad, got.size, worst, g, e, tol)
    return Comparison(not n_bad, message, warnings, max_abs, float(rel.max()), worst, n_bad, got.size, g, e)


def _value_message(n_bad: int, size: int, worst: tuple[int, ...], got: float, expected: float,
                   tol: Tolerance) -> str:
    allowed = f"(allowed: {tol.atol:g} + {tol.rtol:g} x |expected|)"
    if size == 1:
        return f"got {got:.6g}, expected {expected:.6g} {allowed}"
    return (f"{n_bad} of {size} elements ({100 * n_bad / size:.0f}%) outside tolerance; worst at index "
            f"{list(worst)}: got {got:.6g}, expected {expected:.6g} {allowed}")


# --- losses correct up to a positive factor and a parameter-free offset ------------------


def compare_positive_affine(got: Sequence[np.ndarray], expected: Sequence[np.ndarray], tol: Tolerance,
                            over: Sequence[str]) -> tuple[Comparison, float | None]:
    """Judge ``got[t][j] = c * expected[t][j] + d[t]`` with one ``c > 0`` over every example ``t``.

    Each example ``t`` holds the losses at several draws ``j`` of the parameters
    ``over`` (the example's data held fixed). Returns the comparison and the fitted ``c``.
    """
    g = [np.asarray(v, dtype=np.float64).reshape(-1) for v in got]
    e = [np.asarray(v, dtype=np.float64).reshape(-1) for v in expected]
    params = ", ".join(over)
    bad_shape = next((i for i, v in enumerate(g) if v.size != e[i].size), None)
    if bad_shape is not None:
        return Comparison(False, "the loss must be a single number (a scalar)", size=1), None
    if any(not np.all(np.isfinite(v)) for v in g):
        return Comparison(False, "the loss is NaN or infinite for some parameters", max_abs=math.inf), None
    dg = np.concatenate([v - v.mean() for v in g])  # deviations within an example remove d[t]
    de = np.concatenate([v - v.mean() for v in e])
    if not de @ de > 0:  # the reference never changed with the parameters: no factor to fit
        return _constant_reference(dg, tol, params)
    c = float(de @ dg / (de @ de))
    residual = np.concatenate([(gv - c * ev) - (gv - c * ev).mean() for gv, ev in zip(g, e)])
    # The tolerance scales with how much the loss changes with the parameters in each
    # example, never with its value: the offset is free, so a huge constant added to a
    # wrong loss must not widen the tolerance until the mistake hides in it.
    scale = np.concatenate([np.full(gv.size, max(np.ptp(gv), abs(c) * np.ptp(ev))) for gv, ev in zip(g, e)])
    err = np.abs(residual)
    n_bad = int(np.sum(err > tol.atol + tol.rtol * scale))
    rel = float(np.max(err / np.maximum(scale, tol.atol or np.finfo(float).eps)))
    if n_bad:
        return Comparison(False, f"not equal to a positive multiple of the reference loss plus a term free of "
                                 f"({params}): it changes differently as ({params}) change, so gradient descent "
                                 f"on it would give other updates", (), float(err.max()), rel, None, n_bad,
                          err.size), c
    if c <= 0:  # fits perfectly, with the wrong sign: no error numbers to report
        return Comparison(False, f"equals {c:.3g} x the reference loss plus a term free of ({params}); the factor "
                                 "must be positive, or gradient descent climbs instead of descending",
                          size=err.size), c
    note = () if abs(c - 1) <= tol.rtol else (f"equals {c:.6g} x the reference loss (plus a term free of "
                                              f"{params}); a learning rate absorbs the factor",)
    return Comparison(True, "", note, float(err.max()), rel, None, 0, err.size), c


def _constant_reference(dg: np.ndarray, tol: Tolerance, params: str) -> tuple[Comparison, float | None]:
    err = np.abs(dg)
    if np.all(err <= tol.atol):
        return Comparison(True, "", (), float(err.max(initial=0.0)), 0.0, None, 0, err.size), None
    return Comparison(False, f"changes with ({params}) where the reference loss does not", (),
                      float(err.max()), math.inf, None, int(np.sum(err > tol.atol)), err.size), None
