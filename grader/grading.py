"""One grade: a submission against a problem set, question by question, into result objects.

The steps, in order: read the submission statically (syntax, functions, forbidden
imports); load it once in the sandboxed worker; for each question draw its trials
(and, for losses judged up to a positive factor, the parameter variants of each
trial), compute the expected values in this process, call the student's function
in the worker, compare each output, and fold the trials into one result per
output. Expected values never leave this process; the worker sees only the
arguments of its own calls.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np

from grader.compare import Comparison, compare_many, compare_positive_affine, compare_values
from grader.imports import forbidden_uses
from grader.memo import Memo
from grader import prestart
from grader.plan import Drawn, Plan, make_plan
from grader.sampling import CompiledQuestion, Trial
from grader.sandbox import Batch, CallResult, Limits, LoadReport, Sandbox
from grader.shrink import Example, smallest_example
from grader.spec import ProblemSet, QuestionSpec, Tolerance
from grader.submission import Submission, SyntaxIssue, read_submission

if TYPE_CHECKING:  # the diagnoses are imported when an output fails: a full-marks grade never needs them
    from grader.diagnose import Failed

STATUSES = ("passed", "failed", "error", "timeout", "missing", "forbidden")


@dataclass(frozen=True)
class TrialFailure:
    """The failing trial shown to the student: the smallest one, with what is needed to replay it."""

    trial: int
    dims: dict[str, int]
    message: str
    comparison: Comparison | None
    case: dict[str, object] | None = None  # the fixed values, when the trial is one of the spec's cases
    example: Example | None = None  # the simplest failing call, for values that were wrong (not raised)


@dataclass(frozen=True)
class OutputResult:
    problem: str
    question: str
    function: str
    output: str
    status: str  # one of STATUSES
    score: float
    max_score: float
    trials: int
    trials_passed: int
    message: str
    tolerance: Tolerance
    of_tuple: bool = False  # the output is one element of a returned tuple
    diagnosis: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    failure: TrialFailure | None = None


@dataclass(frozen=True)
class GradeResult:
    submission: Path
    problem_set: str
    problems_path: Path
    seed: int
    outputs: tuple[OutputResult, ...]
    notes: tuple[str, ...]  # about the submission as a whole: syntax, load errors, skipped magics
    layers: tuple[str, ...]  # the isolation layers that were active
    elapsed: float
    graded: bool = True  # False when nothing could be run (a syntax error)
    trials: int | None = None  # the --trials override, if any: trial numbers of fixed cases depend on it

    @property
    def score(self) -> float:
        return sum(o.score for o in self.outputs)

    @property
    def max_score(self) -> float:
        return sum(o.max_score for o in self.outputs)


@dataclass
class _Tally:
    """What the trials of one question found for one of its outputs."""

    passed: int = 0
    comparisons: list[tuple[Trial, Comparison]] = field(default_factory=list)
    call_failure: tuple[Trial, CallResult] | None = None
    warnings: dict[str, None] = field(default_factory=dict)
    # positive_affine: per example, the student's and the reference losses over the parameter draws
    examples: list[tuple[Trial, np.ndarray, np.ndarray]] = field(default_factory=list)
    # the student's values on the failing comparisons, for the diagnoses
    failed: list[Failed] = field(default_factory=list)
    # the worst errors over the trials judged together that passed (compare_many), NaN when none
    passed_abs: float = math.nan
    passed_rel: float = math.nan


def grade(path: str | Path, problem_set: ProblemSet, seed: int, only: str | None = None,
          trials: int | None = None, trial: int | None = None, limits: Limits | None = None) -> GradeResult:
    """Grade one submission file; raise ``SubmissionError`` only when it cannot be read at all."""
    start = time.perf_counter()
    sub = read_submission(path)  # an unreadable file fails before any drawing
    if sub.syntax_error is not None:
        return _ungraded(sub, make_plan(problem_set, seed, only, trials, trial, lazy=True), start)
    with _sandbox(sub, problem_set, limits) as sandbox:
        sandbox.start()  # the worker boots (isolation, Python, NumPy) while the trials are drawn
        return _grade_in(sandbox, sub, make_plan(problem_set, seed, only, trials, trial, lazy=True), start)


def grade_planned(sub: Submission | str | Path, plan: Plan, limits: Limits | None = None,
                  start: float | None = None, then: Callable[[Sandbox, LoadReport], None] | None = None
                  ) -> GradeResult:
    """Grade one submission against a plan drawn beforehand (a batch draws one plan for all).

    ``then`` runs in the same sandbox after the questions (a batch draws its plots there), unless
    the file does not compile and no sandbox was started.
    """
    start = time.perf_counter() if start is None else start
    sub = sub if isinstance(sub, Submission) else read_submission(sub)
    if sub.syntax_error is not None:
        return _ungraded(sub, plan, start)
    with _sandbox(sub, plan.problem_set, limits) as sandbox:
        return _grade_in(sandbox, sub, plan, start, then)


def _sandbox(sub: Submission, problem_set: ProblemSet, limits: Limits | None) -> Sandbox:
    limits = limits or Limits()
    # the worker `grade` booted while it was importing, if any (grader.prestart): otherwise a new one starts
    return Sandbox(sub.source, sub.name, limits, sub.locate, problem_set.forbidden_imports,
                   booted=prestart.take(limits))


def _grade_in(sandbox: Sandbox, sub: Submission, plan: Plan, start: float,
              then: Callable[[Sandbox, LoadReport], None] | None = None) -> GradeResult:
    sandbox.preload()  # the worker loads the file while this process checks its imports and draws
    forbidden = forbidden_uses(sub.source, plan.problem_set.forbidden_imports)
    refused: list[list[OutputResult] | None] = []

    def runnable() -> Iterator[Batch]:
        for d in plan.questions:  # a lazy plan draws each question here
            refused.append(_refusal(d, sandbox.load(), sub, forbidden.get(d.cq.question.function)))
            if refused[-1] is None:
                yield _batch(d)

    # the worker never waits for this process: a plan drawn beforehand goes in one request, and a lazy
    # one question by question as they are drawn, so that the worker runs each while the next is drawn
    answers = sandbox.run(runnable() if not plan.drawn else list(runnable()))
    load = sandbox.load()
    outputs: list[OutputResult] = []
    judged: list[tuple[int, CompiledQuestion, list[_Tally]]] = []  # where each judged question's outputs start
    for drawn, refusal in zip(plan.questions, refused):
        if refusal is not None:
            outputs += refusal
            continue
        results, tallies = _judge(drawn.cq, drawn.groups, next(answers))
        judged.append((len(outputs), drawn.cq, tallies))
        outputs += results
    answers.close()
    for at, cq, tallies in judged:  # the smallest failing examples call the worker again: once every answer is in
        outputs[at:at + len(tallies)] = _with_examples(sandbox, cq, outputs[at:at + len(tallies)], tallies)
    if then is not None:
        then(sandbox, load)
    notes = sub.notes + tuple(f"{sub.locate(i.line)}: {i.message}" for i in load.issues)
    ps = plan.problem_set
    return GradeResult(sub.path, ps.name, ps.path, plan.seed, tuple(outputs), notes, load.layers,
                       time.perf_counter() - start, trials=plan.trials)


def _ungraded(sub: Submission, plan: Plan, start: float) -> GradeResult:
    err = sub.syntax_error or SyntaxIssue(0, "does not compile", "")
    where = sub.locate(err.line)
    note = f"{sub.name}, {where}: SyntaxError: {err.message}" + (f"\n    {err.text.strip()}" if err.text else "")
    outputs = [o for cq in plan.compiled for o in _uniform(cq.problem.name, cq.question, "error",
                                                         f"the file does not compile ({where}: {err.message})")]
    ps = plan.problem_set
    return GradeResult(sub.path, ps.name, ps.path, plan.seed, tuple(outputs), (note,), (),
                       time.perf_counter() - start, graded=False, trials=plan.trials)


def _uniform(problem: str, q: QuestionSpec, status: str, message: str) -> list[OutputResult]:
    """Every output of ``q`` with the same status and no points (missing, forbidden, not compiled)."""
    return [OutputResult(problem, q.id, q.function, o.name, status, 0.0, o.points, 0, 0, message, q.tolerance,
                         q.returns_tuple) for o in q.outputs]


def _refusal(drawn: Drawn, load: LoadReport, sub: Submission, forbidden: str | None) -> list[OutputResult] | None:
    """The outputs of a question that is not run (a forbidden import, no such function, no trials), or None."""
    cq = drawn.cq
    q = cq.question
    if forbidden:
        return _uniform(cq.problem.name, q, "forbidden", forbidden)
    if q.function not in load.functions:
        return _uniform(cq.problem.name, q, "missing", f"{q.function} is not defined in {sub.name}")
    if drawn.error:
        return _uniform(cq.problem.name, q, "error", drawn.error)
    return None


_BATCHES: Memo[Batch] = Memo(512)  # a few plans' worth of questions


def _batch(drawn: Drawn) -> Batch:
    """A question's calls on every trial and variant, encoded once per plan (a batch grades all its files so).

    A trial's calls stop at its first failed one (a hang must not cost every variant its
    timeout), and a timeout, crash or forbidden import ends the question.
    """
    cq = drawn.cq
    return _BATCHES.get((drawn,), None, lambda: Batch.of(
        cq.question.function, [_args(cq, v) for group in drawn.groups for v in group], _n_outputs(cq),
        cq.question.timeout, groups=[len(group) for group in drawn.groups], stop_on=("forbidden",)))


def _judge(cq: CompiledQuestion, groups: Sequence[tuple[Trial, ...]], results: Sequence[CallResult]
           ) -> tuple[list[OutputResult], list[_Tally]]:
    """Each output's result from the answers on a question's trials, before any failing example is looked for."""
    q = cq.question
    tallies = [_Tally() for _ in q.outputs]
    answered: list[tuple[Trial, CallResult]] = []  # ok answers whose values are judged together, below
    answers = iter(results)
    for group in groups:
        got = _answers(group, answers)
        if not got or not _tally_trial(cq, group, got, tallies, answered):
            break  # a timeout, crash or forbidden import: there are no more answers
    for i, tally in enumerate(tallies):
        _compare_trials(q, i, answered, tally)
    return [_fold(cq, i, tally, len(groups)) for i, tally in enumerate(tallies)], tallies


def _with_examples(sandbox: Sandbox, cq: CompiledQuestion, results: list[OutputResult],
                   tallies: list[_Tally]) -> list[OutputResult]:
    calls: dict[tuple, CallResult] = {}  # the student's results on simpler trials, shared by the outputs
    return [_with_example(sandbox, cq, i, r, tally, calls) for i, (r, tally) in enumerate(zip(results, tallies))]


def _with_example(sandbox: Sandbox, cq: CompiledQuestion, i: int, result: OutputResult, tally: _Tally,
                  calls: dict) -> OutputResult:
    """``result`` with the smallest failing example of a wrong value attached (losses up to a factor have none)."""
    f = result.failure
    base = next((x for x in tally.failed if f is not None and x.trial.index == f.trial), None)
    if result.status != "failed" or f is None or base is None or cq.question.compare.mode == "positive_affine":
        return result
    q = cq.question

    def call(t: Trial) -> np.ndarray | None:
        key = tuple(sorted(t.dims.items())), tuple((k, v.shape, v.tobytes()) for k, v in t.args.items())
        if key not in calls:
            calls[key] = _call(sandbox, cq, t)
        r = calls[key]
        return r.outputs[i] if r.status == "ok" else None

    def fails(got: np.ndarray, t: Trial) -> bool:
        return not compare_values(got, t.expected[i], q.tolerance, q.compare.strict).passed

    example = smallest_example(cq, base.trial, base.got, i, call, fails)
    return replace(result, failure=replace(f, example=example))


def _answers(group: tuple[Trial, ...], results: Iterator[CallResult]) -> list[CallResult]:
    """The answers on one trial and its variants: up to and including the first that is not ok."""
    answers: list[CallResult] = []
    for _ in group:
        answer = next(results, None)
        if answer is None:
            break
        answers.append(answer)
        if answer.status != "ok":
            break
    return answers


def _tally_trial(cq: CompiledQuestion, group: tuple[Trial, ...], results: list[CallResult], tallies: list[_Tally],
                 answered: list[tuple[Trial, CallResult]]) -> bool:
    """Tally the answers on one trial (and its variants) for each output; False when no more answers come.

    A plain trial whose call was ok goes to ``answered``: its values are compared with the
    other trials' at once (``_compare_trials``).
    """
    q = cq.question
    t = group[0]
    bad = next((r for r in results if r.status != "ok"), None)
    if bad is not None:
        for tally in tallies:
            tally.call_failure = tally.call_failure or (t, bad)
        return bad.status not in ("timeout", "crashed", "forbidden")
    first = results[0]
    for i, tally in enumerate(tallies):
        if first.notes:
            tally.warnings.update(dict.fromkeys(_conversion_warnings(first.notes, i, q)))
        if first.mutated:
            tally.warnings.update(dict.fromkeys(_mutation_warning(m) for m in first.mutated))
        if q.compare.mode == "positive_affine" and all(r.outputs[i].size == 1 for r in results):
            tally.examples.append((t, np.array([float(r.outputs[i].reshape(-1)[0]) for r in results]),
                                   np.array([float(v.expected[i]) for v in group])))
        elif q.compare.mode == "positive_affine":
            _record(tally, t, results[0].outputs[i], compare_values(first.outputs[i], t.expected[i], q.tolerance,
                                                                  q.compare.strict))
    if q.compare.mode != "positive_affine":
        answered.append((t, first))
    return True


def _compare_trials(q: QuestionSpec, i: int, answered: list[tuple[Trial, CallResult]], tally: _Tally) -> None:
    """Output ``i`` of every answered trial against its expected value: those of the expected shape at once,
    and each trial that fails that (or has another shape) on its own, for the report."""
    same = [(t, r.outputs[i]) for t, r in answered if r.outputs[i].shape == t.expected[i].shape]
    agreement = compare_many([got for _, got in same], [t.expected[i] for t, _ in same], q.tolerance)
    tally.passed += len(same) - len(agreement.failed)
    tally.passed_abs, tally.passed_rel = agreement.max_abs, agreement.max_rel
    agreed = {id(t) for t, _ in same} - {id(same[k][0]) for k in agreement.failed}
    for t, r in answered:
        if id(t) not in agreed:
            _record(tally, t, r.outputs[i], compare_values(r.outputs[i], t.expected[i], q.tolerance, q.compare.strict))


def _record(tally: _Tally, t: Trial, got: np.ndarray, comparison: Comparison) -> None:
    tally.comparisons.append((t, comparison))
    tally.passed += comparison.passed
    if not comparison.passed:
        from grader.diagnose import Failed

        tally.failed.append(Failed(t, got))


def _call(sandbox: Sandbox, cq: CompiledQuestion, t: Trial) -> CallResult:
    return sandbox.call(cq.question.function, _args(cq, t), _n_outputs(cq), cq.question.timeout)


def _args(cq: CompiledQuestion, t: Trial) -> list[tuple[str, np.ndarray | int | float]]:
    dims = {d.name for d in cq.problem.dims}
    args: list[tuple[str, np.ndarray | int | float]] = []
    for name in cq.question.args:
        value = t.args[name]
        # dimensions are whole numbers and scalar inputs plain floats, as a student would call it
        args.append((name, int(value) if name in dims else float(value) if value.ndim == 0 else value))
    return args


def _n_outputs(cq: CompiledQuestion) -> int | None:
    return len(cq.question.outputs) if cq.question.returns_tuple else None


def _conversion_warnings(notes: Sequence[str], i: int, q: QuestionSpec) -> list[str]:
    """The worker's notes on output ``i`` that a student should act on: lost precision, odd types.

    Lists, Python and NumPy scalars, integer and boolean arrays convert exactly and
    are not worth a remark.
    """
    own = f"output {i} is " if q.returns_tuple else "the returned value is "
    return [f"returns {n[len(own):]}" for n in notes if n.startswith(own) and _LOSSY.search(n)]


_LOSSY = re.compile(r"float(16|32|128)|subclass")


def _mutation_warning(arg: str) -> str:
    return (f"modifies its argument '{arg}' in place; the grader passed a copy, but code that calls "
            "your function would see its input changed")


def _judge_examples(q: QuestionSpec, tally: _Tally) -> None:
    """positive_affine: one factor c for all examples, so it is judged once over all of them."""
    if not tally.examples:
        return
    trials, got, expected = zip(*tally.examples)
    joint, _ = compare_positive_affine(got, expected, q.tolerance, q.compare.over)
    # how many examples agree on their own, for the "trials passed" count
    tally.passed = sum(compare_positive_affine([g], [e], q.tolerance, q.compare.over)[0].passed
                       for g, e in zip(got, expected)) if not joint.passed else len(trials)
    tally.comparisons.append((trials[0], joint))


def _fold(cq: CompiledQuestion, i: int, tally: _Tally, n_trials: int) -> OutputResult:
    q, out = cq.question, cq.question.outputs[i]
    _judge_examples(q, tally)
    status, message, failure = _verdict(tally)
    # a failed output's worst error is that of its failing trials, not of the ones that passed
    comps = [c for _, c in tally.comparisons if status == "passed" or not c.passed]
    worst = [(c.max_abs, c.max_rel) for c in comps] + ([(tally.passed_abs, tally.passed_rel)] if status == "passed"
                                                        else [])
    errors = [a for a, _ in worst if a == a]  # NaN means "not measured"
    rels = [r for _, r in worst if r == r]
    for c in comps:
        tally.warnings.update(dict.fromkeys(c.warnings))
    names = tuple(o.name for o in q.outputs)
    diagnosis = _diagnose(tally, i, names, q, cq) if status == "failed" else ()
    return OutputResult(
        cq.problem.name, q.id, q.function, out.name, status, out.points if status == "passed" else 0.0,
        out.points, n_trials, tally.passed, message, q.tolerance, q.returns_tuple, diagnosis, _distinct(tally.warnings),
        max(errors) if errors else None, max(rels) if rels else None, failure)


def _diagnose(tally: _Tally, i: int, names: tuple[str, ...], q: QuestionSpec, cq: CompiledQuestion) -> tuple[str, ...]:
    from grader.diagnose import Context, diagnose

    return diagnose(tally.failed, Context(i, names, q.tolerance, tally.passed, cq))


def _distinct(warnings: Iterable[str]) -> tuple[str, ...]:
    """One warning per kind: the same remark about (3, 1) and (4, 1) is said once."""
    kinds: dict[str, str] = {}
    for w in warnings:
        kinds.setdefault(re.sub(r"\d+", "#", w), w)
    return tuple(kinds.values())


def _verdict(tally: _Tally) -> tuple[str, str, TrialFailure | None]:
    if tally.call_failure is not None:
        t, r = tally.call_failure
        status = r.status if r.status in ("timeout", "forbidden") else "error"
        return status, r.message, TrialFailure(t.index, dict(t.dims), r.message, None, _case(t))
    failed = [(t, c) for t, c in tally.comparisons if not c.passed]
    if not failed:
        return "passed", "", None
    # the failing trial with the smallest arguments is the easiest to understand and check by hand
    t, c = min(failed, key=lambda tc: (sum(np.size(v) for v in tc[0].args.values()), tc[0].index))
    return "failed", c.message, TrialFailure(t.index, dict(t.dims), c.message, c, _case(t))


def _case(t: Trial) -> dict[str, object] | None:
    # failures record the base trial, never a parameter variant, so a case here is the spec's
    return dict(t.case) if t.case else None

