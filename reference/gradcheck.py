"""Finite-difference checks of the hand-written VJPs (NumPy only, float64).

``numerical_vjp`` estimates ``d <cotangent, fn(*args)> / d args[index]`` by
central differences, one element at a time. ``check_op_fd`` compares an op's
VJP against it for every differentiable argument, and ``check_op_samples`` does
so over the op's own sample arguments, staying away from kinks where a finite
difference straddles a non-differentiable point and means nothing.

Results are values: a list of ``Mismatch`` (empty when everything agrees),
each naming which derivative of which op broke and by how much.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from reference.ops import Op, Sample

Array = np.ndarray
KINK_MARGIN = 1e-3  # far beyond eps = 1e-6, so neither probe point crosses a kink
REDRAWS = 5
SHAPE_RULE = "identical shapes (never broadcast)"


@dataclass(frozen=True)
class Mismatch:
    """One comparison that failed: what was compared, how badly, and what was allowed."""

    label: str
    max_abs: float
    max_rel: float
    index: tuple[int, ...]
    tol: str

    def __str__(self) -> str:
        if self.tol == SHAPE_RULE:
            return f"{self.label}, allowed {self.tol}"
        return (f"{self.label}: worst abs {self.max_abs:.1e} rel {self.max_rel:.1e} at {self.index}, "
                f"allowed {self.tol}")


# --- finite differences -------------------------------------------------------


def numerical_vjp(
    fn: Callable[..., Array], args: tuple[Array, ...], index: int, cotangent: Array, eps: float = 1e-6
) -> Array:
    """``d <cotangent, fn(*args)> / d args[index]`` by central differences, shaped like ``args[index]``."""
    work = [np.array(a, dtype=np.float64) for a in args]  # private copies: probes write into them
    result = np.zeros_like(work[index])
    with np.errstate(all="ignore"):
        for j in np.ndindex(result.shape):
            result[j] = _central_difference(fn, work, index, j, cotangent, eps)
    return result


def _central_difference(
    fn: Callable[..., Array], work: list[Array], index: int, j: tuple[int, ...], cotangent: Array, eps: float
) -> float:
    x = work[index]
    saved = float(x[j])
    x[j] = saved + eps
    hi = _pairing(cotangent, fn(*work))
    x[j] = saved - eps
    lo = _pairing(cotangent, fn(*work))
    x[j] = saved
    return (hi - lo) / (2.0 * eps)


def _pairing(cotangent: Array, value: Array) -> float:
    return float(np.sum(np.asarray(cotangent, dtype=np.float64) * np.asarray(value, dtype=np.float64)))


# --- comparing arrays -----------------------------------------------------------


def compare_arrays(label: str, got: Any, expected: Any, rtol: float, atol: float) -> Mismatch | None:
    """``None`` when ``got`` matches ``expected`` element by element, else the worst discrepancy.

    Shapes must be identical; NaN matches only NaN in the same place; ``None`` matches nothing.
    """
    expected = np.asarray(expected, dtype=np.float64)
    if got is None or np.shape(got) != expected.shape:
        found = "None" if got is None else f"shape {np.shape(got)}"
        return Mismatch(f"{label}: {found} but expected shape {expected.shape}", math.inf, math.inf, (),
                        SHAPE_RULE)
    got = np.asarray(got, dtype=np.float64)
    tol = f"atol={atol:g} rtol={rtol:g}"
    abs_err = _abs_error(got, expected)
    # An infinite error is never within tolerance, not even of an infinite expected value.
    bad = (abs_err > atol + rtol * np.abs(expected)) | np.isinf(abs_err)
    if not np.any(bad):
        return None
    with np.errstate(all="ignore"):
        rel_err = abs_err / np.abs(expected)
    rel_err = np.where(np.isnan(rel_err), math.inf, rel_err)
    worst = np.unravel_index(int(np.argmax(np.where(bad, abs_err, -1.0))), got.shape)
    return Mismatch(label, float(np.max(abs_err[bad])), float(np.max(rel_err[bad])),
                    tuple(int(i) for i in worst), tol)


def _abs_error(got: Array, expected: Array) -> Array:
    """|got - expected|, with equal infinities and NaN-on-NaN counting as 0 and a lone NaN as inf."""
    got_nan, exp_nan = np.isnan(got), np.isnan(expected)
    with np.errstate(all="ignore"):
        err = np.abs(got - expected)
    err = np.where(got == expected, 0.0, err)  # inf - inf is NaN, but equal infinities agree
    err = np.where(got_nan != exp_nan, math.inf, err)
    return np.where(got_nan & exp_nan, 0.0, err)


# --- checking ops -----------------------------------------------------------------


def differentiable_args(op: Op, args: tuple[Array, ...]) -> list[int]:
    """Indices of the arguments the op is differentiable in."""
    return [i for i in range(len(args)) if i not in op.nondiff_args]


def describe(op: Op, what: str, args: tuple[Array, ...], i: int | None, params: Mapping[str, Any]) -> str:
    """A label such as ``vjp of sum w.r.t. input 0 (shape (3, 4), axis=0)``."""
    head = f"{what} of {op.name}" + ("" if i is None else f" w.r.t. input {i}")
    shapes = ", ".join(str(np.shape(a)) for a in args) if i is None else str(np.shape(args[i]))
    extra = "".join(f", {k}={v!r}" for k, v in params.items())
    return f"{head} (shape {shapes}{extra})"


ReferenceVjp = Callable[[tuple[Array, ...], int, Array], Array]  # (args, index, cotangent) -> cotangent


def check_vjp_against(
    op: Op, args: tuple[Array, ...], params: Mapping[str, Any], rng: np.random.Generator,
    reference: ReferenceVjp, against: str, rtol: float, atol: float,
) -> list[Mismatch]:
    """Compare ``op.vjp`` with ``reference`` for each differentiable argument, on a random cotangent."""
    args = tuple(np.asarray(a, dtype=np.float64) for a in args)
    out = np.asarray(op.forward(*args, **params), dtype=np.float64)
    mismatches = []
    for i in differentiable_args(op, args):
        cotangent = rng.normal(size=out.shape)
        label = describe(op, "vjp", args, i, params) + against
        found = compare_arrays(label, op.vjp(cotangent, out, *args, **params)[i], reference(args, i, cotangent),
                               rtol, atol)
        if found is not None:
            mismatches.append(found)
    return mismatches


def check_op_fd(
    op: Op, args: tuple[Array, ...], params: Mapping[str, Any], rng: np.random.Generator,
    rtol: float = 1e-5, atol: float = 1e-6,
) -> list[Mismatch]:
    """Compare ``op.vjp`` with central differences for each differentiable argument."""
    def numeric(a: tuple[Array, ...], i: int, cotangent: Array) -> Array:
        return numerical_vjp(lambda *x: op.forward(*x, **params), a, i, cotangent)

    return check_vjp_against(op, args, params, rng, numeric, "", rtol, atol)


def kink_distance(op: Op, sample: Sample) -> float:
    """How far a sample's arguments are from the op's non-differentiable points (inf if it has none)."""
    args, params = sample
    return math.inf if op.kink is None else float(op.kink(*args, **params))


def smooth_samples(op: Op, rng: np.random.Generator) -> list[Sample]:
    """The op's samples, each redrawn (a few times) until it is at least ``KINK_MARGIN`` from a kink.

    A sample that stays near a kink after every redraw is left out.
    """
    draws = [op.samples(rng) for _ in range(REDRAWS)]
    chosen = []
    for position in range(len(draws[0])):
        smooth = (d[position] for d in draws if kink_distance(op, d[position]) >= KINK_MARGIN)
        sample = next(smooth, None)
        if sample is not None:
            chosen.append(sample)
    return chosen


def check_op_samples(op: Op, rng: np.random.Generator) -> list[Mismatch]:
    """``check_op_fd`` over the op's samples that are far enough from its kinks."""
    return [m for args, params in smooth_samples(op, rng) for m in check_op_fd(op, args, params, rng)]
