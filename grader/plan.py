"""A grading plan: every question's trials and expected values for one seed, drawn once.

Nothing in a plan depends on the submission, so a batch grades hundreds of
submissions against one plan and pays for sampling and the reference values
once. The expected values stay in the grader's process; the worker only ever
sees the arguments of its own calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator, Sequence, overload

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


class Drawing(Sequence[Drawn]):
    """A plan's questions, each drawn the first time it is asked for (``make_plan(lazy=True)``).

    One grade of one file then sends each question to the worker as soon as it is drawn,
    and the worker runs it while the next is drawn (``grader.grading``).
    """

    def __init__(self, compiled: Sequence[CompiledQuestion], draw: Callable[[CompiledQuestion], Drawn]) -> None:
        self.compiled = tuple(compiled)
        self._draw = draw
        self._drawn: list[Drawn | None] = [None] * len(self.compiled)

    def __len__(self) -> int:
        return len(self.compiled)

    @overload
    def __getitem__(self, index: int) -> Drawn: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Drawn]: ...

    def __getitem__(self, index: int | slice) -> Drawn | Sequence[Drawn]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(len(self))[index])
        drawn = self._drawn[index]
        if drawn is None:
            drawn = self._drawn[index] = self._draw(self.compiled[index])
        return drawn

    def __iter__(self) -> Iterator[Drawn]:
        return (self[i] for i in range(len(self)))

    @property
    def done(self) -> bool:
        return all(d is not None for d in self._drawn)


@dataclass(frozen=True)
class Plan:
    problem_set: ProblemSet
    seed: int
    questions: Sequence[Drawn]  # in the problem set's order, only the selected ones; a tuple, or a Drawing
    trials: int | None = None  # the --trials override, if any: trial numbers of fixed cases depend on it

    @property
    def drawn(self) -> bool:
        """Whether every question is drawn already (false for a lazy plan that is not yet)."""
        return not isinstance(self.questions, Drawing) or self.questions.done

    @property
    def compiled(self) -> tuple[CompiledQuestion, ...]:
        """The questions without their trials: a lazy plan draws none for them (a file that does not compile)."""
        if isinstance(self.questions, Drawing):
            return self.questions.compiled
        return tuple(d.cq for d in self.questions)


def make_plan(problem_set: ProblemSet, seed: int, only: str | None = None, trials: int | None = None,
              trial: int | None = None, lazy: bool = False) -> Plan:
    """Draw every selected question's trials (all of them, or only trial number ``trial``) for ``seed``.

    ``lazy``: draw each question when it is first needed instead (the values are the same).
    """
    compiled = [compile_question(p, q) for p, q in selected_questions(problem_set, only)]
    draw = partial(_draw, seed=seed, trials=trials, only_trial=trial)
    return Plan(problem_set, seed, Drawing(compiled, draw) if lazy else tuple(map(draw, compiled)), trials)


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
