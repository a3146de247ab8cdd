"""Diagnoses: each hypothesis on hand-made trials, its negative cases, and two ends to end through the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from grader.diagnose import Context, Failed, diagnose
from grader.sampling import Trial
from grader.spec import Tolerance

from tests.helpers import BUNDLED, by_output, grade_json, write

TOL = Tolerance(rtol=1e-6, atol=1e-9)
RNG = np.random.default_rng(0)
SOLUTION_SOURCE = (BUNDLED.parent.parent / "submissions" / "examples" / "solution.py").read_text()


def trial(*expected: np.ndarray, index: int = 0, dims: Mapping[str, int] | None = None,
          args: Mapping[str, np.ndarray] | None = None, case: Mapping[str, Any] | None = None) -> Trial:
    return Trial(index, 0, 0, dims or {"n": 3}, args or {"x": np.zeros(3)}, tuple(expected), case)


def run(pairs: list[tuple[Trial, np.ndarray]], output: int = 0, names: tuple[str, ...] = ("out",),
        passed: int = 3) -> tuple[str, ...]:
    return diagnose([Failed(t, np.asarray(g, dtype=np.float64)) for t, g in pairs],
                    Context(output, names, TOL, passed))


def matrix(shape: tuple[int, ...] = (3, 4)) -> np.ndarray:
    return RNG.normal(size=shape)


# --- transposed --------------------------------------------------------------------------

TRANSPOSED = "the transpose of the expected matrix: check which index is the row"


def test_a_transposed_matrix_is_diagnosed() -> None:
    a, b = matrix((3, 4)), matrix((3, 3))
    [d] = run([(trial(a), a.T), (trial(b, index=1), b.T)])
    assert d.startswith(TRANSPOSED) and "a gradient has its parameter's shape" in d


def test_a_symmetric_matrix_transposed_gets_no_diagnosis() -> None:
    s = matrix((3, 3))
    s = s + s.T
    # handed over as if it failed: the transpose of a symmetric matrix is no evidence of a transpose
    assert run([(trial(s), s.T)]) == ()


def test_transposed_on_only_one_of_two_failing_trials_gets_none() -> None:
    a, b = matrix((3, 4)), matrix((3, 4))
    assert run([(trial(a), a.T), (trial(b, index=1), b.T * 1.5)]) == ()


# --- constant factor ---------------------------------------------------------------------


def test_one_constant_factor_on_every_trial() -> None:
    a, b = matrix(), matrix((2, 2))
    assert run([(trial(a), 0.5 * a), (trial(b, index=1), 0.5 * b)]) == ("off by a constant factor of 0.5",)


def test_a_flipped_sign_is_named() -> None:
    a = matrix()
    assert run([(trial(a), -a)]) == ("off by a constant factor of -1: the sign is flipped",)


def test_a_factor_that_is_a_dimension() -> None:
    a, b = matrix((3,)), matrix((5,))
    pairs = [(trial(a, dims={"m": 2, "n": 3}), 3 * a), (trial(b, index=4, dims={"m": 2, "n": 5}), 5 * b)]
    assert run(pairs) == ("off by a factor of n (= 3 in trial 0): a mean where a sum was asked, or the reverse?",)


def test_a_factor_that_is_one_over_a_dimension() -> None:
    a, b = matrix((3,)), matrix((5,))
    pairs = [(trial(a, dims={"n": 3}), a / 3), (trial(b, index=1, dims={"n": 5}), b / 5)]
    assert run(pairs) == ("off by a factor of 1/n (= 1/3 in trial 0): a mean where a sum was asked, or the reverse?",)


def test_factors_that_differ_and_are_no_dimension_get_none() -> None:
    a, b = matrix((3,)), matrix((3,))
    assert run([(trial(a), 2 * a), (trial(b, index=1), 7 * b)]) == ()


def test_no_factor_when_only_some_elements_scale() -> None:
    a = matrix((3, 4))
    got = a.copy()
    got[0] *= 2.0
    assert run([(trial(a), got)]) == ()


def test_no_factor_from_a_single_number() -> None:
    assert run([(trial(np.array(2.0)), np.array(3.0))]) == ()  # any two scalars are "proportional"


# --- all zeros ---------------------------------------------------------------------------


def test_all_zeros_is_diagnosed() -> None:
    a = matrix()
    assert run([(trial(a), np.zeros_like(a))]) == ("all zeros: is a term missing, or a stub left in?",)


def test_zeros_on_one_trial_only_get_none() -> None:
    a, b = matrix(), matrix()
    assert run([(trial(a), np.zeros_like(a)), (trial(b, index=1), b + 1.0)]) == ()


# --- diagonal matrix and vector ----------------------------------------------------------


def test_a_vector_for_a_diagonal_matrix() -> None:
    v = matrix((4,))
    [d] = run([(trial(np.diag(v)), v)])
    assert d.startswith("returns the diagonal as a vector") and "np.diag(...)" in d


def test_a_diagonal_matrix_for_a_vector() -> None:
    v = matrix((4,))
    assert run([(trial(v), np.diag(v))]) == ("returns a diagonal matrix where a vector was asked: use the diagonal",)


def test_the_diagonal_of_a_full_matrix_gets_none() -> None:
    a = matrix((4, 4))
    assert run([(trial(a), np.diag(a))]) == ()


# --- non-finite on large inputs ----------------------------------------------------------

OVERFLOW = "NaN or Inf only on large inputs: an overflow (exp of a large number?)"


def test_nan_on_a_fixed_case_and_a_large_input_is_an_overflow() -> None:
    a = matrix((3,))
    pairs = [(trial(a, index=10, case={"beta": 1000}), np.array([np.nan, 0.0, 1.0])),
             (trial(a, index=2, args={"x": np.array([1.0, 45.0, 0.0])}), np.array([np.inf, 0.0, 0.0]))]
    [d] = run(pairs, passed=9)
    assert d.startswith(OVERFLOW) and "subtract the max before exp" in d


def test_nan_on_moderate_inputs_is_not_an_overflow() -> None:
    a = matrix((3,))
    assert run([(trial(a, args={"x": np.array([1.0, 2.0, 0.5])}), np.array([np.nan, 0.0, 1.0]))]) == ()


def test_no_overflow_when_no_moderate_trial_passed() -> None:
    a = matrix((3,))
    assert run([(trial(a, case={"beta": 1000}), np.full(3, np.nan))], passed=0) == ()


def test_large_dimensions_do_not_count_as_large_inputs() -> None:
    t = trial(matrix((3,)), dims={"n": 40}, args={"n": np.array(40.0), "x": np.ones(3)})
    assert run([(t, np.full(3, np.nan))]) == ()


# --- tuple order -------------------------------------------------------------------------


def test_an_output_equal_to_another_expected_output() -> None:
    dW, db = matrix((3, 2)), matrix((2,))
    pairs = [(trial(dW, db), db)]
    assert run(pairs, output=0, names=("dW", "db")) == ("equals the expected 'db': are the returned values in the "
                                                         "order (dW, db)?",)


def test_tuple_order_needs_every_failing_trial() -> None:
    a, b, c, d = matrix((2,)), matrix((2,)), matrix((2,)), matrix((2,))
    pairs = [(trial(a, b), b), (trial(c, d, index=1), c + 1.0)]
    assert run(pairs, names=("u", "v")) == ()


# --- no diagnosis ------------------------------------------------------------------------


def test_no_failing_trials_means_no_diagnosis() -> None:
    assert run([]) == ()


def test_a_random_wrong_answer_gets_none() -> None:
    a, b = matrix((3, 3)), matrix((3, 3))
    assert run([(trial(a, b), matrix((3, 3))), (trial(b, a, index=1), matrix((3, 3)))], names=("p", "q")) == ()


def test_a_correct_but_unusual_answer_gets_none() -> None:
    # a (3, 1) column for a (3,) vector, equal in value: if it is ever reported failing, it is no mistake we can name
    v = matrix((3,))
    assert run([(trial(v), v.reshape(3, 1) * (1 + 1e-9))]) == ()


# --- end to end through the CLI (helpers from tests/helpers.py) --------------------------


def test_a_transposed_gradient_is_diagnosed_in_the_json(tmp_path: Path) -> None:
    wrong = SOLUTION_SOURCE.replace("dW1 = np.outer(dz1, x)", "dW1 = np.outer(x, dz1)")
    assert wrong != SOLUTION_SOURCE
    code, report = grade_json(write(tmp_path, wrong), "--only", "reg_grads", "--seed", "3", "--trials", "4")
    outputs = by_output(report)
    assert code == 0 and outputs[("reg_grads", "dW1")]["status"] == "failed"
    [d] = outputs[("reg_grads", "dW1")]["diagnosis"]
    assert d.startswith(TRANSPOSED)
    assert all(q["diagnosis"] == [] for k, q in outputs.items() if k != ("reg_grads", "dW1"))


def test_softargmax_without_the_max_gets_the_overflow_diagnosis(tmp_path: Path) -> None:
    naive = SOLUTION_SOURCE.replace("e = np.exp(s - np.max(s))", "e = np.exp(s)")
    assert naive != SOLUTION_SOURCE
    code, report = grade_json(write(tmp_path, naive), "--only", "softargmax", "--seed", "3")
    out = by_output(report)[("softargmax", "softargmax")]
    assert code == 0 and out["status"] == "failed"
    assert len(out["diagnosis"]) == 1 and out["diagnosis"][0].startswith(OVERFLOW)
