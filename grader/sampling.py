"""Seeded trials: dimensions and inputs drawn per question, with expected values.

Every draw has a generator of its own (``grader.seeding``), keyed by the seed,
the problem, the function, the trial, the attempt, the parameter variant and the
input's name, so a trial is reproduced from the printed seed alone, on any
machine, and adding an input or a question does not change the draws of the
others.

Trial 0 uses the smallest dimensions, so the first failure a student sees is a
small one. A draw that brings any op on the path within ``kink_margin`` of a
point where it is not differentiable (ReLU at 0, max at a tie), or that makes an
argument or an expected value non-finite, is redrawn.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from grader.distributions import DISTRIBUTIONS, fixed_value
from grader.memo import Memo
from grader.seeding import DrawKey
from grader.spec import DimSpec, InputSpec, ProblemSpec, QuestionSpec
from reference.errors import EvaluationError, ExpressionError, SamplingError
from reference.evaluate import evaluate
from reference.graph import Apply, Leaf, Node, leaf_names
from reference.program import Program, compile_program

MAX_ATTEMPTS = 100


@dataclass(frozen=True)
class CompiledQuestion:
    """A question resolved into graphs: how each argument is computed, and each expected output."""

    problem: ProblemSpec
    question: QuestionSpec
    arg_nodes: Mapping[str, Node]  # leaves: the problem's inputs and dimensions
    output_nodes: tuple[Node, ...]  # leaves: the question's arguments and the dimensions
    needed_inputs: tuple[str, ...]
    computed_args: tuple[str, ...]  # the arguments that are nodes, computed from the inputs by ``arg_program``
    arg_program: Program
    output_program: Program


@dataclass(frozen=True)
class Trial:
    index: int
    seed: int
    attempt: int  # how many draws were rejected before this one
    dims: Mapping[str, int]
    args: Mapping[str, np.ndarray]  # float64; a dimension argument is a 0-d array
    expected: tuple[np.ndarray, ...]
    case: Mapping[str, Any] | None  # the fixed values of an extra case, if this trial is one


def compile_question(problem: ProblemSpec, question: QuestionSpec) -> CompiledQuestion:
    """Resolve a question's arguments and outputs; raise ``ExpressionError`` naming the output at fault.

    The same problem and question give the same compiled question, so each question's
    graphs are resolved and compiled once however many plans are drawn from them.
    """
    return _compile(_Spec(problem, question))


class _Spec:
    """A problem and one of its questions as a cache key: specs hold dicts, so they are the same by identity."""

    __slots__ = ("problem", "question")

    def __init__(self, problem: ProblemSpec, question: QuestionSpec) -> None:
        self.problem, self.question = problem, question

    def __hash__(self) -> int:
        return hash((id(self.problem), id(self.question)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Spec) and other.problem is self.problem and other.question is self.question


@lru_cache(maxsize=1024)  # the key holds the specs, so an id is never reused while it is cached
def _compile(spec: _Spec) -> CompiledQuestion:
    problem, question = spec.problem, spec.question
    dims = frozenset(d.name for d in problem.dims)
    arg_nodes = {a: problem.graph.resolve_name(a, problem.variables) for a in question.args}
    leaves = frozenset(question.args) | dims
    outputs = []
    for out in question.outputs:
        try:
            outputs.append(problem.graph.resolve(out.expr, leaves))
        except ExpressionError as exc:
            raise ExpressionError(f"output '{out.name}' ({out.text}): {exc}", exc.col) from None
    needed = set().union(*(leaf_names(n) for n in arg_nodes.values())) if arg_nodes else set()
    computed = {a: n for a, n in arg_nodes.items() if not isinstance(n, Leaf)}
    return CompiledQuestion(problem, question, arg_nodes, tuple(outputs),
                            tuple(name for name in problem.inputs if name in needed), tuple(computed),
                            compile_program(tuple(computed.values())), compile_program(outputs))


def draw_trials(cq: CompiledQuestion, seed: int, trials: int | None = None) -> list[Trial]:
    """The question's random trials (``trials`` of them, default the spec's), then its fixed cases."""
    n = cq.question.trials if trials is None else trials
    with np.errstate(all="ignore"):  # as in draw_trial, set once for all the trials
        random = [_draw_trial(cq, seed, i) for i in range(n)]
        return random + [_draw_trial(cq, seed, n + j, case) for j, case in enumerate(cq.question.cases)]


def draw_variants(cq: CompiledQuestion, trial: Trial, count: int) -> list[Trial]:
    """``count`` trials with the example of ``trial`` kept and the parameters ``compare.over`` redrawn.

    A loss judged up to a positive factor and a parameter-free offset is compared
    across such variants: only how it changes with the parameters matters.
    """
    over = set(cq.question.compare.over)
    fixed = {**trial.dims, **{a: v for a, v in trial.args.items() if a not in over}}
    with np.errstate(all="ignore"):  # as in draw_trial, set once for all the variants
        return [_draw_trial(cq, trial.seed, trial.index, fixed, variant=j + 1) for j in range(count)]


def draw_trial(cq: CompiledQuestion, seed: int, index: int, case: Mapping[str, Any] | None = None,
               variant: int = 0) -> Trial:
    """One trial, redrawn until it stays clear of every kink; raise ``SamplingError`` if it never does."""
    with np.errstate(all="ignore"):  # non-finite values are judged here, not warned about
        return _draw_trial(cq, seed, index, case, variant)


def _draw_trial(cq: CompiledQuestion, seed: int, index: int, case: Mapping[str, Any] | None = None,
                variant: int = 0) -> Trial:
    best: tuple[float, str] = (-np.inf, "")  # the rejected draw that came nearest to acceptance
    for attempt in range(MAX_ATTEMPTS):
        trial, closest = _attempt(cq, seed, index, attempt, case, variant)
        if trial is not None:
            return trial
        best = max(best, closest, key=lambda c: c[0])
    margin = cq.question.kink_margin
    advice = (f"lower kink_margin below {best[0]:.3g} or change the input distributions" if best[0] > 0
              else "change the input distributions or the case's fixed values")
    raise SamplingError(
        f"trial {index}: none of {MAX_ATTEMPTS} draws stayed clear of non-differentiable or non-finite "
        f"values; the best still had {best[1]} (distance {best[0]:.3g}, kink_margin {margin:g}). {advice.capitalize()}")


class _KinkTracker:
    """Remembers the op application that came closest to its kink (``observe`` sees every one)."""

    def __init__(self) -> None:
        self.closest: tuple[float, str] = (np.inf, "")

    def observe(self, node: Apply, args: tuple[np.ndarray, ...]) -> None:
        kink = node.op.kink
        if kink is None:
            return
        d = float(kink(*args, **node.params))
        d = 0.0 if math.isnan(d) else d
        if d < self.closest[0]:
            self.closest = (d, f"{node.op.kink_where} in '{node.text}'")


def _attempt(
    cq: CompiledQuestion, seed: int, index: int, attempt: int, case: Mapping[str, Any] | None, variant: int
) -> tuple[Trial | None, tuple[float, str]]:
    key = _key(cq, seed, index, attempt, variant)
    dims = _draw_dims(cq.problem.dims, key, smallest=index == 0 and case is None, case=case or {})
    return _complete(cq, seed, index, attempt, dims, _draw_inputs(cq, key, dims, case or {}), case)


def _key(cq: CompiledQuestion, seed: int, index: int, attempt: int, variant: int) -> DrawKey:
    """The key of an attempt's dimensions; each input's key adds its name to it."""
    return DrawKey((seed, cq.problem.name, cq.question.function, index, attempt, variant))


def _draw_inputs(cq: CompiledQuestion, key: DrawKey, dims: Mapping[str, int],
                 case: Mapping[str, Any]) -> dict[str, np.ndarray]:
    env: dict[str, np.ndarray] = {d: np.asarray(float(v)) for d, v in dims.items()}
    drawn = [name for name in cq.needed_inputs if case.get(name) is None]
    rngs = dict(zip(drawn, key.generators(drawn)))
    for name in cq.needed_inputs:
        env[name] = _draw_input(cq.problem.inputs[name], dims, rngs.get(name), case.get(name))
    return env


def _complete(cq: CompiledQuestion, seed: int, index: int, attempt: int, dims: Mapping[str, int],
              env: Mapping[str, np.ndarray], case: Mapping[str, Any] | None
              ) -> tuple[Trial | None, tuple[float, str]]:
    """The trial of these inputs, or None with the reason when it is near a kink or not finite."""
    tracker = _KinkTracker()
    args = _arguments(cq, env, tracker)
    leaf_env = {**{d: env[d] for d in dims}, **args}
    expected = _expected(cq, leaf_env, tracker)
    if not _all_finite((*args.values(), *expected)):
        return None, (0.0, "a non-finite argument or expected value")
    if tracker.closest[0] < cq.question.kink_margin:
        return None, tracker.closest
    return Trial(index, seed, attempt, dims, args, expected, dict(case) if case else None), tracker.closest


def _arguments(cq: CompiledQuestion, env: Mapping[str, np.ndarray], tracker: _KinkTracker) -> dict[str, np.ndarray]:
    """The question's arguments: an input or a dimension is its drawn value, a node is computed from them."""
    computed = dict(zip(cq.computed_args, cq.arg_program.evaluate(env, tracker.observe))) if cq.computed_args \
        else {}
    return {a: computed[a] if a in computed else env[a] for a in cq.arg_nodes}


def _all_finite(values: tuple[np.ndarray, ...]) -> bool:
    # One check over all the values together: a check per small array costs more than the check itself.
    return bool(np.logical_and.reduce(np.isfinite(np.concatenate(values, axis=None)), axis=None))


ROUNDABLE = frozenset({"normal", "uniform"})  # rounding other draws would break what they guarantee


def simpler_trial(cq: CompiledQuestion, trial: Trial, smallest: bool, decimals: int | None) -> Trial | None:
    """``trial`` redrawn from its own seed with the smallest dimensions and/or inputs rounded, if still valid.

    The result is a trial that is easier to check by hand; None when it comes near a
    kink or is not finite (rounding can land on ReLU's 0). The dimensions and values
    a fixed case sets are kept. It depends on the trial alone, so a batch draws it once
    for every submission whose smallest failing example starts from that trial.
    """
    return _SIMPLER.get((cq, trial), (smallest, decimals), lambda: _simpler_trial(cq, trial, smallest, decimals))


_SIMPLER: Memo[Trial | None] = Memo(4096)  # five per failing trial shown


def _simpler_trial(cq: CompiledQuestion, trial: Trial, smallest: bool, decimals: int | None) -> Trial | None:
    case = dict(trial.case or {})
    key = _key(cq, trial.seed, trial.index, trial.attempt, 0)
    try:
        dims = _draw_dims(cq.problem.dims, key, smallest=True, case=case) if smallest else dict(trial.dims)
    except SamplingError:
        return None
    env = _draw_inputs(cq, key, dims, case)
    if decimals is not None:
        for name in cq.needed_inputs:
            if cq.problem.inputs[name].dist in ROUNDABLE and name not in case:
                env[name] = np.round(env[name], decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
    try:
        with np.errstate(all="ignore"):  # as in draw_trial
            return _complete(cq, trial.seed, trial.index, trial.attempt, dims, env, trial.case)[0]
    except (EvaluationError, SamplingError):
        return None


def _expected(cq: CompiledQuestion, env: Mapping[str, np.ndarray], tracker: _KinkTracker
              ) -> tuple[np.ndarray, ...]:
    try:
        return tuple(cq.output_program.evaluate(env, tracker.observe))
    except EvaluationError:  # say which output: evaluated alone, the failing one raises again
        for i, node in enumerate(cq.output_nodes):
            try:
                evaluate(node, env)
            except EvaluationError as exc:
                out = cq.question.outputs[i]
                raise EvaluationError(f"output '{out.name}' ({out.text}): {exc}") from None
        raise


def largest_dims(problem: ProblemSpec) -> dict[str, int]:
    """Every dimension at the top of its range (as a case, to check that a spec works there too)."""
    dims: dict[str, int] = {}
    for d in problem.dims:
        dims[d.name] = d.high if isinstance(d.high, int) else dims[d.high]
    return dims


def _draw_dims(specs: tuple[DimSpec, ...], key: DrawKey, smallest: bool, case: Mapping[str, Any]) -> dict[str, int]:
    rng: np.random.Generator | None = None  # built only if some dimension is drawn
    dims: dict[str, int] = {}
    for d in specs:
        low = d.low if isinstance(d.low, int) else dims[d.low]
        high = d.high if isinstance(d.high, int) else dims[d.high]
        if d.name in case:
            dims[d.name] = int(case[d.name])
        elif low > high:
            raise SamplingError(f"dimension '{d.name}' has an empty range [{low}, {high}]")
        elif smallest:
            dims[d.name] = low
        else:
            rng = key.generator() if rng is None else rng
            dims[d.name] = int(rng.integers(low, high + 1))
    return dims


def _draw_input(spec: InputSpec, dims: Mapping[str, int], rng: np.random.Generator | None, fixed: Any
                ) -> np.ndarray:
    """The input ``spec`` drawn from its own generator (its name added to the attempt's key), or ``fixed``."""
    shape = tuple([s if isinstance(s, int) else dims[s] for s in spec.shape])
    if fixed is not None:  # a case's value, or an example held fixed under the parameter redraws
        return fixed_value(fixed, shape)
    try:
        return np.asarray(DISTRIBUTIONS[spec.dist].draw(rng, shape, spec.options), dtype=np.float64)
    except SamplingError as exc:
        raise SamplingError(f"input '{spec.name}': {exc}") from None


def stable_key(name: str) -> int:
    """A number for a name that is the same in every run and on every machine (the self-check's seeds)."""
    # crc32 is stable across runs and machines, unlike hash() of a str.
    return zlib.crc32(name.encode())
