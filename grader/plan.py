"""A grading plan: every question's trials and expected values for one seed, drawn once.

Nothing in a plan depends on the submission, so a batch grades hundreds of
submissions against one plan and pays for sampling and the reference values
once. The expected values stay in the grader's process; the worker only ever
sees the arguments of its own calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from grader.sampling import CompiledQuestion, Trial, compile_question, draw_trial, draw_trials, draw_variants
from grader.selection import selected_questions
from grader.spec import ProblemSet
from reference.errors import ToolkitError

AFFINE_VARIANTS = 6  # parameter draws per example for positive_affine losses


@dataclass(frozen=True)
class Drawn:
    """One question's trials: each base trial with its parameter variants, or why none could be drawn."""

    cq: CompiledQuestion
    groups: tuple[tuple[Trial, ...], ...]  # (base trial, *variants); variants only for positive_affine losses
    error: str = ""  # a spec that validated but cannot be drawn for this seed


@dataclass(frozen=True)
class Plan:
    problem_set: ProblemSet
    seed: int
    questions: tuple[Drawn, ...]  # in the problem set's order, only the selected ones
    trials: int | None = None  # the --trials override, if any: trial numbers of fixed cases depend on it


def make_plan(problem_set: ProblemSet, seed: int, only: str | None = None, trials: int | None = None,
              trial: int | None = None) -> Plan:
    """Draw every selected question's trials (all of them, or only trial number ``trial``) for ``seed``."""
    drawn = [_draw(compile_question(p, q), seed, trials, trial) for p, q in selected_questions(problem_set, only)]
    return Plan(problem_set, seed, tuple(drawn), trials)


def _draw(cq: CompiledQuestion, seed: int, trials: int | None, only_trial: int | None) -> Drawn:
    try:
        bases = _bases(cq, seed, trials, only_trial)
        affine = cq.question.compare.mode == "positive_affine"
        groups = tuple((t, *(draw_variants(cq, t, AFFINE_VARIANTS) if affine else ())) for t in bases)
    except ToolkitError as exc:
        return Drawn(cq, (), f"the grader could not draw inputs: {exc}")
    return Drawn(cq, groups)


def _bases(cq: CompiledQuestion, seed: int, trials: int | None, only_trial: int | None) -> list[Trial]:
    if only_trial is None:
        return draw_trials(cq, seed, trials)
    n = cq.question.trials if trials is None else trials
    if only_trial >= n + len(cq.question.cases):
        raise ToolkitError(f"there is no trial {only_trial}: this question has trials 0 to "
                           f"{n + len(cq.question.cases) - 1}")
    case = cq.question.cases[only_trial - n] if only_trial >= n else None
    return [draw_trial(cq, seed, only_trial, case)]
