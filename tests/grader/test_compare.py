"""Comparison: shape before values, never broadcast; tolerance numbers; the 1.4 equivalence rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.compare import compare_many, compare_positive_affine, compare_values
from grader.spec import Tolerance

TOL = Tolerance(rtol=1e-6, atol=1e-9)


def test_equal_arrays_pass_with_zero_error() -> None:
    e = np.arange(6.0).reshape(2, 3)
    c = compare_values(e.copy(), e, TOL)
    assert c.passed and c.max_abs == 0.0 and c.message == ""


@pytest.mark.parametrize("got_shape,expected_shape", [((3, 3), (3,)), ((3,), (3, 3)), ((2, 3), (3, 2)), ((1,), (3,))])
def test_shape_is_checked_before_values_and_never_broadcast(got_shape: tuple, expected_shape: tuple) -> None:
    # np.allclose(ones((3, 3)), ones(3)) is True: broadcasting would pass these
    c = compare_values(np.ones(got_shape), np.ones(expected_shape), TOL)
    assert not c.passed
    assert c.message == f"shape {got_shape}, but the expected shape is {expected_shape}"


def test_singleton_axes_pass_with_a_warning_unless_strict() -> None:
    e = np.array([1.0, 2.0, 3.0])
    c = compare_values(e.reshape(3, 1), e, TOL)
    assert c.passed and c.warnings == ("returned shape (3, 1) where (3,) was expected; accepted, but return (3,)",)
    strict = compare_values(e.reshape(3, 1), e, TOL, strict=True)
    assert not strict.passed and "strict about shape" in strict.message
    assert compare_values(np.array([[4.0]]), np.array(4.0), TOL).passed  # (1, 1) for a scalar


def test_tolerance_is_atol_plus_rtol_times_expected() -> None:
    e = np.array([1000.0, 0.0])
    inside = e + np.array([1000.0 * 1e-6 * 0.99, 0.99e-9])
    outside = e + np.array([0.0, 2e-9])
    assert compare_values(inside, e, TOL).passed
    c = compare_values(outside, e, TOL)
    assert not c.passed and c.worst_index == (1,) and c.n_bad == 1 and c.share_bad == 0.5


def test_failure_report_numbers_and_message() -> None:
    e = np.array([[1.0, 2.0], [3.0, 4.0]])
    got = e.copy()
    got[1, 0] = 3.5
    c = compare_values(got, e, TOL)
    assert (c.max_abs, c.worst_index, c.n_bad, c.size) == (0.5, (1, 0), 1, 4)
    assert c.max_rel == pytest.approx(0.5 / 3)
    assert c.message == ("1 of 4 elements (25%) outside tolerance; worst at index [1, 0]: got 3.5, expected 3 "
                         "(allowed: 1e-09 + 1e-06 x |expected|)")


def test_nan_and_inf_are_reported_as_such() -> None:
    c = compare_values(np.array([np.nan, np.inf, 1.0]), np.ones(3), TOL)
    assert not c.passed and c.message.startswith("1 NaN and 1 infinite value(s) among 3")


def test_an_error_that_overflows_is_a_wrong_value_not_a_nan() -> None:
    # every element finite, but their difference is not: a value failure, with the worst element named
    with np.errstate(over="ignore"):
        c = compare_values(np.array([1e308, 1.0]), np.array([-1e308, 1.0]), TOL)
    assert not c.passed and (c.n_bad, c.worst_index, c.max_abs) == (1, (0,), np.inf)
    assert c.message == "1 of 2 elements (50%) outside tolerance; worst at index [0]: got 1e+308, expected -1e+308 " \
                        "(allowed: 1e-09 + 1e-06 x |expected|)"


def test_exact_elements_have_no_error_ratio_even_where_nothing_is_allowed() -> None:
    c = compare_values(np.array([0.0, 2.0]), np.array([0.0, 2.0]), Tolerance(rtol=1e-6, atol=0.0))
    assert c.passed and (c.max_abs, c.max_rel) == (0.0, 0.0)


def _losses(student, reference, rng: np.random.Generator, examples: int = 6, draws: int = 8):
    got, expected = [], []
    for _ in range(examples):
        y = rng.choice([-1.0, 1.0])
        z = rng.normal(size=draws) * 3  # z = b + w.x changes with the parameters (w, b)
        got.append(student(z, y))
        expected.append(reference(z, y))
    return got, expected


def _ln_cosh(z, y):
    return np.log(np.cosh(z)) - y * z


def _cross_entropy_form(z, y):  # the other seed student's form: equal up to a constant
    yhat = np.tanh(z)
    return -0.5 * ((1 + y) * np.log(1 + yhat) + (1 - y) * np.log(1 - yhat))


def _perceptron(z, y):
    return np.maximum(0.0, -y * z)


@pytest.mark.parametrize("name,student,reference,passes", [
    ("both tanh-logistic forms", _cross_entropy_form, _ln_cosh, True),
    ("twice the loss plus a constant", lambda z, y: 2 * _ln_cosh(z, y) + 7.0, _ln_cosh, True),
    ("perceptron up to a factor of 2", lambda z, y: 2 * _perceptron(z, y), _perceptron, True),
    ("hinge is not the perceptron loss", lambda z, y: np.maximum(0.0, 1 - y * z), _perceptron, False),
    ("the negated loss climbs", lambda z, y: -_ln_cosh(z, y), _ln_cosh, False),
    ("a factor that changes between examples", lambda z, y: (2 + y) * _ln_cosh(z, y), _ln_cosh, False),
])
def test_positive_affine_equivalence(name: str, student, reference, passes: bool) -> None:
    got, expected = _losses(student, reference, np.random.default_rng(3))
    c, factor = compare_positive_affine(got, expected, TOL, ["w", "b"])
    assert c.passed is passes, c.message
    if not passes:
        assert c.message


def test_positive_affine_names_the_factor() -> None:
    got, expected = _losses(lambda z, y: 2 * _perceptron(z, y), _perceptron, np.random.default_rng(0))
    c, factor = compare_positive_affine(got, expected, TOL, ["w", "b"])
    assert factor == pytest.approx(2.0)
    assert c.warnings == ("equals 2 x the reference loss (plus a term free of w, b); a learning rate absorbs "
                          "the factor",)


@pytest.mark.parametrize("offset", [0.0, 1e3, 1e7, 1e10])
def test_a_constant_offset_never_widens_the_tolerance(offset: float) -> None:
    hinge = lambda z, y: np.maximum(0.0, 1 - y * z) + offset  # noqa: E731
    got, expected = _losses(hinge, _perceptron, np.random.default_rng(1))
    assert not compare_positive_affine(got, expected, TOL, ["w", "b"])[0].passed
    right = lambda z, y: 2 * _perceptron(z, y) + offset  # noqa: E731
    got, expected = _losses(right, _perceptron, np.random.default_rng(1))
    assert compare_positive_affine(got, expected, TOL, ["w", "b"])[0].passed


# --- many trials at once --------------------------------------------------------------------------

_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                    st.sampled_from([0.0, -0.0, 1.0, 1e-300, 5e-324, 1e308, -1e308]))


@st.composite
def _trials(draw: st.DrawFn) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Trials of one output: finite expected values and answers that are often close, sometimes anything."""
    got, expected = [], []
    for _ in range(draw(st.integers(1, 5))):
        shape = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
        n = int(np.prod(shape))
        e = np.array(draw(st.lists(st.floats(-1e6, 1e6, width=64) | st.sampled_from([0.0, 5e-324, 1e300]),
                                   min_size=n, max_size=n)), dtype=np.float64).reshape(shape)
        noise = np.array(draw(st.lists(st.sampled_from([0.0, 1e-12, 1e-7, 1e-3]) | _VALUES, min_size=n, max_size=n)),
                         dtype=np.float64).reshape(shape)
        with np.errstate(all="ignore"):
            got.append(e + noise if draw(st.booleans()) else noise)
        expected.append(e)
    return got, expected


@given(_trials(), st.sampled_from([TOL, Tolerance(rtol=0.0, atol=0.0), Tolerance(rtol=1e-3, atol=0.0)]))
@settings(max_examples=300, deadline=None)
def test_many_trials_at_once_agree_with_each_on_its_own(trials: tuple, tol: Tolerance) -> None:
    got, expected = trials
    one_by_one = [compare_values(g, e, tol) for g, e in zip(got, expected)]
    agreement = compare_many(got, expected, tol)
    assert agreement.failed == tuple(i for i, c in enumerate(one_by_one) if not c.passed)
    passed = [c for c in one_by_one if c.passed]
    if not passed:
        assert math.isnan(agreement.max_abs) and math.isnan(agreement.max_rel)
    else:  # the worst errors of the trials that passed, exactly as each reports them
        assert agreement.max_abs == max(c.max_abs for c in passed)
        assert agreement.max_rel == max(c.max_rel for c in passed)


def test_many_trials_name_the_failing_ones_among_empty_and_scalar_trials() -> None:
    e = [np.zeros((0, 3)), np.array(2.0), np.ones(3), np.zeros((2, 0)), np.array([1.0, np.inf])]
    g = [np.zeros((0, 3)), np.array(2.0 + 1e-3), np.ones(3), np.zeros((2, 0)), np.array([1.0, np.inf])]
    agreement = compare_many(g, e, TOL)
    # an infinite answer fails even where the reference is infinite too, as compare_values says
    assert agreement.failed == (1, 4) and (agreement.max_abs, agreement.max_rel) == (0.0, 0.0)
    assert compare_many([], [], TOL).failed == ()


def test_the_expected_side_prepared_once_serves_every_answer_and_tolerance() -> None:
    e = [np.array([1.0, 2.0]), np.array(3.0)]
    close = [np.array([1.0, 2.0 + 1e-4]), np.array(3.0)]
    far = [np.array([1.5, 2.0]), np.array(3.0)]
    loose, exact = Tolerance(rtol=1e-3, atol=0.0), Tolerance(rtol=0.0, atol=0.0)
    assert compare_many(close, e, loose).failed == ()
    assert compare_many(far, e, loose).failed == (0,)  # the same expected arrays, another answer
    assert compare_many(close, e, exact).failed == (0,)  # the same arrays, another tolerance
    assert compare_many(close, list(e), loose).failed == ()  # the same arrays in another list
    assert compare_many(close, [a + 1.0 for a in e], loose).failed == (0, 1)
    assert compare_many(close, e, loose).max_abs == (2.0 + 1e-4) - 2.0
