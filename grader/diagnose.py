"""Diagnoses: why a wrong answer is wrong, said only when the numbers prove it.

Each hypothesis is a small pure function over the failing trials of one output.
It returns a sentence for the student only when the student's numbers match the
hypothesis within the question's tolerance on EVERY failing trial; a hunch is
never reported. Outputs that passed, or that failed only by exceptions or
timeouts, get no diagnosis: there are no numbers to test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from grader.compare import within_tolerance
from grader.diagnose_graph import aligned, jacobian_layout, neighbouring_quantity, partial_input, path_mistake, \
    problem_constants
from grader.sampling import CompiledQuestion, Trial
from grader.spec import Tolerance

LARGE_INPUT = 30.0  # |x| above this overflows exp(x) in float32 and soon after in float64 chains
FACTOR_RTOL = 1e-6  # how closely the fitted factors of different trials must agree


@dataclass(frozen=True)
class Failed:
    """One failing trial of one output: the trial (with every expected output) and what the student returned."""

    trial: Trial
    got: np.ndarray  # float64, the shape the student returned


@dataclass(frozen=True)
class Context:
    """What every hypothesis may use: the output judged, all output names, the tolerance, the passes."""

    output: int
    names: tuple[str, ...]  # the question's outputs, in the order the student must return them
    tol: Tolerance
    passed: int  # trials of this output that passed
    cq: CompiledQuestion | None = None  # the question's graphs, for the hypotheses that re-evaluate them

    def expected(self, f: Failed) -> np.ndarray:
        return f.trial.expected[self.output]


def _nonzero_count(failures: Sequence[Failed], ctx: Context) -> int:
    return sum(int(np.sum(np.abs(ctx.expected(f)) > ctx.tol.atol)) for f in failures)


# --- the hypotheses ----------------------------------------------------------------------


def transposed(failures: Sequence[Failed], ctx: Context) -> str | None:
    """The student returned the transpose of a (non-symmetric) expected matrix."""
    def fits(f: Failed) -> bool:
        e = ctx.expected(f)
        return (e.ndim == 2 and f.got.shape == e.T.shape and not within_tolerance(e.T, e, ctx.tol)
                and within_tolerance(f.got, e.T, ctx.tol))
    if all(fits(f) for f in failures):
        return ("the transpose of the expected matrix: check which index is the row "
                "(J[i, j] = d out_i / d in_j; a gradient has its parameter's shape)")
    return None


def _factor(f: Failed, ctx: Context) -> float | None:
    """The one ``c`` with ``got = c * expected`` on this trial (least squares), if it fits every element."""
    e = ctx.expected(f)
    g = aligned(f.got, e.shape)
    if g is None or not np.all(np.isfinite(g)) or not np.any(np.abs(e) > ctx.tol.atol):
        return None
    c = float(np.sum(g * e) / np.sum(e * e))
    clearly_off = abs(c - 1) > 1e-3 and abs(c) > 1e-9  # c = 0 is the all-zeros diagnosis
    return c if clearly_off and within_tolerance(g, c * e, ctx.tol) else None


def constant_factor(failures: Sequence[Failed], ctx: Context) -> str | None:
    """The answer is the expected one times a factor: one constant, or one of the trial's dimensions."""
    cs = [_factor(f, ctx) for f in failures]
    if any(c is None for c in cs) or _nonzero_count(failures, ctx) < 2:  # one number proves no factor
        return None
    factors = [float(c) for c in cs if c is not None]
    if all(abs(c - factors[0]) <= FACTOR_RTOL * abs(factors[0]) for c in factors):
        flipped = ": the sign is flipped" if abs(factors[0] + 1) <= FACTOR_RTOL else ""
        return f"off by a constant factor of {factors[0]:g}{flipped}{_tied(factors[0], ctx)}"
    return _dimension_factor(failures, factors)


def _tied(c: float, ctx: Context) -> str:
    """The constants of the spec's expression that explain a factor ``c``: one left out, or one counted twice."""
    found = []
    for k, where in problem_constants(ctx.cq, ctx.output):
        if abs(c * k - 1) <= FACTOR_RTOL:
            found.append(f"the factor {k:g} of '{where}' left out")
        elif abs(c - k) <= FACTOR_RTOL * abs(k):
            found.append(f"the factor {k:g} of '{where}' counted twice")
    return f" ({'; or '.join(found)}?)" if found else ""


def _dimension_factor(failures: Sequence[Failed], factors: list[float]) -> str | None:
    """The name of a dimension ``n`` with ``c = n`` (or ``c = 1/n``) on every failing trial."""
    first = failures[0].trial
    for name, value in first.dims.items():
        for power in (1, -1):
            if all(name in f.trial.dims and abs(c - f.trial.dims[name] ** power) <= FACTOR_RTOL * abs(c)
                   for f, c in zip(failures, factors)):
                shown, number = (name, f"{value}") if power == 1 else (f"1/{name}", f"1/{value}")
                return (f"off by a factor of {shown} (= {number} in trial {first.index}): "
                        "a mean where a sum was asked, or the reverse?")
    return None


def all_zeros(failures: Sequence[Failed], ctx: Context) -> str | None:
    """The answer is all zeros where the expected one is not."""
    if all(f.got.size and np.all(f.got == 0) and np.any(np.abs(ctx.expected(f)) > ctx.tol.atol)
           for f in failures):
        return "all zeros: is a term missing, or a stub left in?"
    return None


def _is_diagonal(m: np.ndarray, atol: float) -> bool:
    return m.ndim == 2 and m.shape[0] == m.shape[1] and bool(np.all(np.abs(m - np.diag(np.diag(m))) <= atol))


def diagonal_vector(failures: Sequence[Failed], ctx: Context) -> str | None:
    """A vector for a diagonal matrix, or a diagonal matrix for a vector."""
    def vector_for_matrix(f: Failed) -> bool:
        e = ctx.expected(f)
        return _is_diagonal(e, ctx.tol.atol) and f.got.ndim == 1 and within_tolerance(f.got, np.diag(e), ctx.tol)

    def matrix_for_vector(f: Failed) -> bool:
        e = ctx.expected(f)
        return (e.ndim == 1 and f.got.shape == (e.size, e.size) and _is_diagonal(f.got, ctx.tol.atol)
                and within_tolerance(np.diag(f.got), e, ctx.tol))
    if _nonzero_count(failures, ctx) < 2:
        return None
    if all(vector_for_matrix(f) for f in failures):
        return ("returns the diagonal as a vector, where the full (diagonal) Jacobian matrix was asked: "
                "use np.diag(...)")
    if all(matrix_for_vector(f) for f in failures):
        return "returns a diagonal matrix where a vector was asked: use the diagonal"
    return None


def _large(t: Trial) -> bool:
    """One of the spec's fixed cases, or an input (not a dimension) with a value beyond ``LARGE_INPUT``."""
    return t.case is not None or any(name not in t.dims and np.size(v) and float(np.max(np.abs(v))) > LARGE_INPUT
                                     for name, v in t.args.items())


def overflow(failures: Sequence[Failed], ctx: Context) -> str | None:
    """NaN or Inf, and only where the inputs are large, while the moderate trials passed."""
    if ctx.passed and all(_large(f.trial) and not np.all(np.isfinite(f.got)) for f in failures):
        return ("NaN or Inf only on large inputs: an overflow (exp of a large number?); use a numerically "
                "stable form (subtract the max before exp, or write sigmoid/softplus with exp(-|x|))")
    return None


def tuple_order(failures: Sequence[Failed], ctx: Context) -> str | None:
    """This output equals another output's expected value: the tuple is returned in another order."""
    for j, other in enumerate(ctx.names):
        if j != ctx.output and all(within_tolerance(f.got, f.trial.expected[j], ctx.tol) for f in failures):
            return f"equals the expected '{other}': are the returned values in the order ({', '.join(ctx.names)})?"
    return None


Hypothesis = Callable[[Sequence[Failed], Context], "str | None"]
HYPOTHESES: tuple[Hypothesis, ...] = (
    transposed, diagonal_vector, jacobian_layout, constant_factor, all_zeros, tuple_order, overflow,
)
# Hypotheses that re-evaluate the reference graph: dearer, and only for finite answers, since no
# alternative formula yields a NaN that the student's arithmetic did.
GRAPH_HYPOTHESES: tuple[Hypothesis, ...] = (path_mistake, neighbouring_quantity, partial_input)
# Said only when nothing before them explains the answer: a forgotten sigmoid' also "equals dL/dh",
# and a missing factor also makes the answer "wrong only where z1 > 0".
AFTERTHOUGHTS = (neighbouring_quantity, partial_input)


def diagnose(failures: Sequence[Failed], ctx: Context) -> tuple[str, ...]:
    """Every hypothesis that the failing trials of one output all confirm, in a fixed order.

    ``failures`` are the trials where the student's values were compared and failed;
    with none (a passed output, or one that only raised or timed out) nothing is said.
    """
    if not failures:
        return ()
    hypotheses = [h for h in HYPOTHESES if h is not tuple_order or len(ctx.names) > 1]
    if all(np.all(np.isfinite(f.got)) for f in failures):
        hypotheses += GRAPH_HYPOTHESES
    with np.errstate(all="ignore"):  # a student's 1e308 overflows a fitted factor: no hypothesis, no warning
        return _confirmed(hypotheses, failures, ctx)


def _confirmed(hypotheses: Sequence[Hypothesis], failures: Sequence[Failed], ctx: Context) -> tuple[str, ...]:
    found: list[str] = []
    for h in hypotheses:
        if h in AFTERTHOUGHTS and found:  # a whole explanation makes these a distraction
            continue
        d = h(failures, ctx)
        if d and not _restates(d, found):
            found.append(d)
    return tuple(found)


def _restates(diagnosis: str, earlier: Sequence[str]) -> bool:
    """A path mistake that names the same factor an earlier factor diagnosis already tied to the spec."""
    factor = re.search(r"the factor \S+ of '[^']*'", diagnosis)
    return factor is not None and "; or with" not in diagnosis and any(factor.group() in e for e in earlier)
