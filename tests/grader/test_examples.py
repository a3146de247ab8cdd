"""Every example submission gets exactly the score and the failures it declares."""

from __future__ import annotations

import pytest

from grader.examples import check_example, example_files
from grader.spec import load_problem_set

from tests.helpers import BUNDLED

PROBLEM_SET = load_problem_set(BUNDLED)
EXAMPLES = example_files(PROBLEM_SET.examples) if PROBLEM_SET.examples else []


def test_the_bundled_set_has_examples_including_a_solution() -> None:
    assert len(EXAMPLES) >= 2 and any(p.name == "solution.py" for p in EXAMPLES)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_gets_its_declared_result(path) -> None:
    # one fixed seed here; 'grade selfcheck' in CI grades them again on a fresh random seed
    check = check_example(path, PROBLEM_SET, 7)
    assert check.ok, f"{path.name} (seed 7): {check.problem}"


def test_a_wrong_declaration_is_reported(tmp_path) -> None:
    wrong = tmp_path / "claims_too_much.py"
    wrong.write_text((PROBLEM_SET.examples / "perceptron_hinge.py").read_text()
                     .replace("expected score: 99", "expected score: all"))
    check = check_example(wrong, PROBLEM_SET, 7)
    assert not check.ok and check.problem.startswith("scored 99 of 102, declares 102")


def test_a_diagnosis_the_example_does_not_get_is_reported(tmp_path) -> None:
    wrong = tmp_path / "claims_another_diagnosis.py"
    wrong.write_text((PROBLEM_SET.examples / "gelu_inner_derivative.py").read_text()
                     .replace("expected diagnosis: d_gelu: the tanh-GELU derivative without the inner factor",
                              "expected diagnosis: d_gelu: the exact GELU"))
    check = check_example(wrong, PROBLEM_SET, 7)
    assert not check.ok
    assert check.problem.startswith("d_gelu lacks the diagnosis 'the exact GELU' (it has: equals the expected value "
                                    "computed with the tanh-GELU derivative without the inner factor")
