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


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_gets_its_declared_result(path, seed: int) -> None:
    check = check_example(path, PROBLEM_SET, seed)
    assert check.ok, f"{path.name} (seed {seed}): {check.problem}"
