"""Problem specs: the typed model of a problem set and the YAML loader that builds it.

A problem set is a folder of YAML files, one problem (a network, a loss, a group
of related questions) per file, plus an optional ``set.yaml`` with the set's
name, title and defaults. ``docs/specs.md`` documents the format.

Loading never stops at the first mistake: every problem found is collected as a
``SpecProblem`` naming the file, the question and the field, with a fix, and
``load_problem_set`` raises one ``SpecError`` carrying all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from grader.imports import DEFAULT_FORBIDDEN
from reference.errors import SpecError
from reference.expr import Expr
from reference.graph import Graph

# The project's defaults, overridable in set.yaml, in a file's `defaults:` and per question.
# rtol/atol: equivalent float64 formulas agree to ~1e-12, wrong answers are off by O(1);
# these leave room for ill-conditioned but correct computations (inverses, projections).
PROJECT_DEFAULTS: Mapping[str, float] = {
    "trials": 10,
    "rtol": 1e-6,
    "atol": 1e-9,
    "kink_margin": 1e-3,
    "timeout": 5.0,
}
COMPARE_MODES = ("allclose", "positive_affine")


@dataclass(frozen=True)
class SpecProblem:
    """One mistake in a spec, located and explained."""

    file: str
    question: str | None
    field: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"{self.file}" + (f": question '{self.question}'" if self.question else "")
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"{where}: {self.field}: {self.message}.{fix}"


@dataclass(frozen=True)
class DimSpec:
    """A dimension drawn per trial from ``low..high`` (inclusive); bounds may name earlier dims."""

    name: str
    low: int | str
    high: int | str


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int | str, ...]
    dist: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class OutputSpec:
    """One graded output of a question: its name, expression and points."""

    name: str
    text: str
    expr: Expr
    points: float


@dataclass(frozen=True)
class Tolerance:
    """An answer passes where ``|got - expected| <= atol + rtol * |expected|``, element-wise."""

    rtol: float
    atol: float


@dataclass(frozen=True)
class CompareSpec:
    """How outputs are compared.

    ``allclose``: element-wise within the tolerance. ``positive_affine``: the
    answer may be ``c * expected + d`` with one constant ``c > 0`` and a ``d`` that
    does not depend on the arguments listed in ``over`` (a loss that gives the same
    gradient-descent updates up to a learning rate). ``strict``: singleton axes
    must match too.
    """

    mode: str = "allclose"
    over: tuple[str, ...] = ()
    strict: bool = False


@dataclass(frozen=True)
class QuestionSpec:
    id: str
    function: str
    args: tuple[str, ...]
    outputs: tuple[OutputSpec, ...]
    returns_tuple: bool  # the student returns a tuple, graded element by element
    trials: int
    tolerance: Tolerance
    compare: CompareSpec
    cases: tuple[Mapping[str, Any], ...]
    kink_margin: float
    timeout: float
    doc: str = ""  # what the student's function computes, for the generated template

    @property
    def points(self) -> float:
        return sum(o.points for o in self.outputs)


@dataclass(frozen=True)
class ProblemSpec:
    path: Path
    name: str
    title: str
    dims: tuple[DimSpec, ...]
    inputs: Mapping[str, InputSpec]
    nodes: Mapping[str, Expr]
    questions: tuple[QuestionSpec, ...]
    graph: Graph = field(compare=False, repr=False)

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(self.inputs) | {d.name for d in self.dims}


@dataclass(frozen=True)
class ProblemSet:
    path: Path
    name: str
    title: str
    problems: tuple[ProblemSpec, ...]
    forbidden_imports: tuple[str, ...] = DEFAULT_FORBIDDEN  # modules a submission may not use
    examples: Path | None = None  # example submissions with declared scores (set.yaml: examples)

    def questions(self) -> Iterator[tuple[ProblemSpec, QuestionSpec]]:
        for problem in self.problems:
            for question in problem.questions:
                yield problem, question

    @property
    def max_score(self) -> float:
        return sum(q.points for _, q in self.questions())


def load_problem_set(path: str | Path, trust_cache: bool = False) -> ProblemSet:
    """Load and validate a problem set (a folder, or one YAML file); raise ``SpecError`` listing every problem.

    ``trust_cache`` skips the dry run of a set already validated with the same files and code.
    """
    from grader.spec_loader import load  # the loader needs sampling, which needs this model

    problem_set, problems = load(Path(path), trust_cache)
    if problems or problem_set is None:
        raise SpecError(problems)
    return problem_set


def validate(path: str | Path) -> list[SpecProblem]:
    """Every problem in the spec(s) at ``path``; an empty list means the set is valid."""
    from grader.spec_loader import load

    return load(Path(path))[1]
