"""The self-check: every expected value of every spec, recomputed with torch autograd.

The NumPy reference computes each quantity with hand-written VJPs; here the same
resolved graph is evaluated with torch ops and differentiated by
``torch.autograd.grad`` / ``torch.func.jacrev`` (``grader.torch_eval``), on many
seeded trials. Any disagreement beyond a tight float64 tolerance fails the
check. The op registry itself is checked too: each op's forward and VJP against
torch, and its VJP against central finite differences.

This is the only module on a path that imports torch, and it does so lazily,
so ``grade`` itself never pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.examples import ExampleCheck, check_examples
from grader.sampling import compile_question, draw_trials, stable_key
from grader.spec import ProblemSpec, QuestionSpec, load_problem_set
from reference.errors import ToolkitError

# "About 1e-9 relative": both sides are float64 evaluations of the same formula,
# so anything larger is a wrong derivative, not rounding. The absolute part is
# scaled by the size of the value so that cancellation near zero is not flagged.
RTOL = 1e-9
ATOL = 1e-12
DEFAULT_TRIALS = 25


@dataclass(frozen=True)
class Disagreement:
    """The worst disagreement between NumPy and torch for one question."""

    output: str
    trial: int
    max_abs: float
    max_rel: float


@dataclass(frozen=True)
class QuestionCheck:
    problem: str
    question: str
    function: str
    trials: int
    worst: Disagreement | None  # None when there was nothing to compare
    failures: tuple[str, ...]  # one line per output and trial beyond tolerance, or an error

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class OpCheck:
    op: str
    mismatches: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.mismatches


@dataclass(frozen=True)
class SelfCheckResult:
    path: Path
    problem_set: str
    seed: int
    trials: int
    ops: tuple[OpCheck, ...]
    questions: tuple[QuestionCheck, ...]
    examples: tuple[ExampleCheck, ...] = ()

    @property
    def ok(self) -> bool:
        return all(c.ok for c in (*self.ops, *self.questions, *self.examples))


def run_selfcheck(path: str | Path, seed: int, trials: int = DEFAULT_TRIALS) -> SelfCheckResult:
    """Check the op registry and every question of the problem set at ``path`` against torch."""
    problem_set = load_problem_set(path)  # raises SpecError: a broken spec cannot be self-checked
    ops = check_ops(seed)
    questions = tuple(check_question(p, q, seed, trials) for p, q in problem_set.questions())
    examples = tuple(check_examples(problem_set, problem_set.examples, seed)) if problem_set.examples else ()
    return SelfCheckResult(Path(path), problem_set.name, seed, trials, ops, questions, examples)


def check_ops(seed: int) -> tuple[OpCheck, ...]:
    """Every registry op: forward and VJP against torch, VJP against finite differences."""
    from grader.torch_eval import check_op_torch
    from reference.gradcheck import check_op_samples
    from reference.ops import OPS

    results = []
    for name, op in OPS.items():
        rng = np.random.default_rng([seed, stable_key(name)])
        found = [str(m) for m in check_op_samples(op, rng)]
        for args, params in op.samples(rng):
            found += [str(m) for m in check_op_torch(op, args, params, rng)]
        results.append(OpCheck(name, tuple(found)))
    return tuple(results)


def check_question(problem: ProblemSpec, question: QuestionSpec, seed: int, trials: int) -> QuestionCheck:
    """Compare NumPy and torch on every output of ``trials`` random trials and the fixed cases."""
    from grader.torch_eval import evaluate_torch

    failures: list[str] = []
    worst: Disagreement | None = None
    n = 0
    try:
        cq = compile_question(problem, question)
        for trial in draw_trials(cq, seed, trials):
            n += 1
            env = {**{d: np.asarray(float(v)) for d, v in trial.dims.items()}, **trial.args}
            for out, node, expected in zip(question.outputs, cq.output_nodes, trial.expected):
                got = evaluate_torch(node, env)
                label = out.name if question.returns_tuple else out.text  # the instructor sees the formula
                d = _disagreement(label, trial.index, expected, got)
                if worst is None or d.max_rel > worst.max_rel:
                    worst = d
                if not _within(expected, got):
                    failures.append(f"output '{label}', trial {trial.index}: NumPy and torch differ by "
                                    f"{d.max_abs:.3g} (relative {d.max_rel:.3g})")
    except ToolkitError as exc:
        failures.append(f"could not be checked: {exc}")
    return QuestionCheck(problem.name, question.id, question.function, n, worst, tuple(failures))


def _within(numpy_value: np.ndarray, torch_value: np.ndarray) -> bool:
    if numpy_value.shape != torch_value.shape:
        return False
    scale = max(1.0, float(np.max(np.abs(torch_value)))) if torch_value.size else 1.0
    return bool(np.all(np.abs(numpy_value - torch_value) <= ATOL * scale + RTOL * np.abs(torch_value)))


def _disagreement(output: str, trial: int, numpy_value: np.ndarray, torch_value: np.ndarray) -> Disagreement:
    if numpy_value.shape != torch_value.shape:
        return Disagreement(output, trial, np.inf, np.inf)
    if not numpy_value.size:
        return Disagreement(output, trial, 0.0, 0.0)
    err = np.abs(numpy_value - torch_value)
    # relative to the value, or to the absolute floor where the value is (near) zero
    scale = max(1.0, float(np.max(np.abs(torch_value))))
    rel = err / np.maximum(np.abs(torch_value), ATOL * scale)
    return Disagreement(output, trial, float(err.max()), float(rel.max()))

