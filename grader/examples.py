"""Example submissions with the scores they must get, graded as a check of the grader.

An example declares in its text (a docstring or a comment) the score it must get
and, for a wrong one, exactly which outputs must fail::

    expected score: all            (full marks), or a number such as 71
    expected failures: reg_grads -> dW1, reg_sgd_step -> W1
    expected diagnosis: reg_grads -> dW1: the factor 5 of '5 * relu(z1)' left out

A diagnosis line (there may be several) names one failing output and words that
one of its diagnoses must contain: the diagnoses are checked on real mistakes
on every seed, like the scores.

``grade selfcheck`` and the tests grade every example of a problem set and
report any whose score or failing outputs differ: a solution that loses points,
or a mistake that is missed or costs other questions points, means the grader
or the spec is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from grader.grading import GradeResult, grade
from grader.spec import ProblemSet
from reference.errors import ToolkitError

_SCORE = re.compile(r"^\s*(?:#\s*)?expected score:\s*(\S+)\s*$", re.M | re.I)
_FAILURES = re.compile(r"^\s*(?:#\s*)?expected failures:\s*(.+?)\s*$", re.M | re.I)
_DIAGNOSIS = re.compile(r"^\s*(?:#\s*)?expected diagnosis:\s*(\S+(?:\s->\s\S+)?):\s*(.+?)\s*$", re.M | re.I)


@dataclass(frozen=True)
class ExampleCheck:
    path: Path
    expected_score: float | None  # None: no declaration found
    score: float
    max_score: float
    expected_failures: frozenset[str] | None
    failures: frozenset[str]
    problem: str  # why the example does not get what it declares; empty when it does

    @property
    def ok(self) -> bool:
        return not self.problem


def output_label(function: str, output: str, of_tuple: bool) -> str:
    return f"{function} -> {output}" if of_tuple else function


def example_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".py", ".ipynb")) if folder.is_dir() else []


def check_example(path: Path, problem_set: ProblemSet, seed: int) -> ExampleCheck:
    """Grade one example and compare with what it declares."""
    text = path.read_text(encoding="utf-8", errors="replace")
    declared = _SCORE.search(text)
    listed = _FAILURES.search(text)
    expected_failures = frozenset(x.strip() for x in listed.group(1).split(",")) if listed else None
    try:
        result = grade(path, problem_set, seed)
    except ToolkitError as exc:
        return ExampleCheck(path, None, 0.0, problem_set.max_score, expected_failures, frozenset(),
                            f"could not be graded: {exc}")
    failures = frozenset(output_label(o.function, o.output, o.of_tuple) for o in result.outputs
                         if o.status != "passed")
    expected = _expected_score(declared.group(1) if declared else None, result)
    problem = "; ".join(p for p in (_problem(expected, result, expected_failures, failures),
                                     _diagnosis_problems(_DIAGNOSIS.findall(text), result)) if p)
    return ExampleCheck(path, expected, result.score, result.max_score, expected_failures, failures, problem)


def _diagnosis_problems(declared: list[tuple[str, str]], result: GradeResult) -> str:
    """Each declared diagnosis that the named output did not get."""
    diagnoses = {output_label(o.function, o.output, o.of_tuple): o.diagnosis for o in result.outputs}
    missing = [f"{label} lacks the diagnosis '{words}' (it has: {'; '.join(diagnoses.get(label, ())) or 'none'})"
               for label, words in declared if not any(words in d for d in diagnoses.get(label, ()))]
    return "; ".join(missing)


def _expected_score(text: str | None, result: GradeResult) -> float | None:
    if text is None:
        return None
    if text.lower() == "all":
        return result.max_score
    try:
        return float(text)
    except ValueError:
        return None


def _problem(expected: float | None, result: GradeResult, listed: frozenset[str] | None,
             failures: frozenset[str]) -> str:
    if expected is None:
        return "declares no score: add a line 'expected score: all' (or a number)"
    problems = []
    if abs(result.score - expected) > 1e-9:
        problems.append(f"scored {result.score:g} of {result.max_score:g}, declares {expected:g}")
    if listed is not None and listed != failures:
        missed, extra = sorted(listed - failures), sorted(failures - listed)
        problems += [f"expected to fail but passed: {', '.join(missed)}"] if missed else []
        problems += [f"failed but not expected to: {', '.join(extra)}"] if extra else []
    return "; ".join(problems)


def check_examples(problem_set: ProblemSet, folder: Path, seed: int) -> list[ExampleCheck]:
    return [check_example(p, problem_set, seed) for p in example_files(folder)]
