"""Diagnoses that re-evaluate the reference graph, end to end: a small spec, a student file, the verdict.

Each mistake below is what a student would really write; each test asserts the
exact sentence the student gets, and the negative tests that a right answer, or
a wrong one that fits no hypothesis, gets none.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.grading import OutputResult, grade
from grader.spec import load_problem_set

from tests.helpers import write_spec

SPEC = """
problem: demo
title: "Graph diagnoses"
dims:
  n: [2, 4]
  m: [2, 3]
inputs:
  x: {shape: [n], dist: normal, scale: [0.5, 2]}
  W: {shape: [m, n], dist: normal}
  X: {shape: [m, n], dist: normal}
  v: {shape: [n], dist: normal}
nodes:
  z: W @ x
  h: sigmoid(z)
  L: sum(3 * h ** 2)
  Y: tanh(X) * 2
  a: v * v + v
  w: a * (v + v)
questions:
  - {id: grad, function: dL_dW, args: [W, x], returns: "grad(L, W)"}
  - {id: dz, function: dL_dz, args: [z], returns: "grad(L, z)"}
  - {id: dh, function: dL_dh, args: [h], returns: "grad(L, h)"}
  - {id: relu, function: d_leaky, args: [x], returns: "derivative(leaky_relu(x, slope=0.1), x)"}
  - {id: gelu, function: gelu_value, args: [x], returns: gelu(x)}
  - {id: jac, function: jac_Y, args: [X], returns: "jacobian(Y, X)"}
  - {id: paths, function: dw_dv, args: [v], returns: "derivative(w, v)"}
"""

RIGHT = """
import numpy as np
def sig(t): return 1 / (1 + np.exp(-t))
def dL_dW(W, x):
    h = sig(W @ x)
    return np.outer(6 * h * h * (1 - h), x)
def dL_dz(z):
    h = sig(z)
    return 6 * h * h * (1 - h)
def dL_dh(h): return 6 * h
def d_leaky(x): return np.where(x > 0, 1.0, 0.1)
def gelu_value(x): return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
def jac_Y(X):
    d = (2 * (1 - np.tanh(X) ** 2)).reshape(-1)
    return np.diag(d)
def dw_dv(v): return 2 * (3 * v * v + 2 * v)
"""


@pytest.fixture(scope="module")
def problem_set(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("spec")
    write_spec(folder, SPEC)
    return load_problem_set(folder)


def graded(tmp_path: Path, problem_set, replacements: dict[str, str]) -> dict[str, OutputResult]:
    source = RIGHT
    for old, new in replacements.items():
        assert old in source, old
        source = source.replace(old, new)
    path = tmp_path / "student.py"
    path.write_text(source)
    result = grade(path, problem_set, seed=11, trials=6)
    return {o.function: o for o in result.outputs}


def test_the_right_answers_pass_with_no_diagnosis(tmp_path: Path, problem_set) -> None:
    results = graded(tmp_path, problem_set, {})
    assert {f: o.status for f, o in results.items()} == dict.fromkeys(results, "passed")
    assert all(o.diagnosis == () for o in results.values())


def test_a_forgotten_activation_derivative_is_named(tmp_path: Path, problem_set) -> None:
    out = graded(tmp_path, problem_set, {"return 6 * h * h * (1 - h)": "return 6 * h"})["dL_dz"]
    assert out.diagnosis == ("equals the expected value computed with the derivative of sigmoid in 'sigmoid(z)' "
                             "left out (a factor sigmoid'(...) missing on the chain-rule path?)",)


def test_an_activation_derivative_applied_twice_is_named(tmp_path: Path, problem_set) -> None:
    out = graded(tmp_path, problem_set, {"np.outer(6 * h * h * (1 - h), x)":
                                         "np.outer(6 * h * h * (1 - h) ** 2 * h, x)"})["dL_dW"]
    assert out.diagnosis == ("equals the expected value computed with the derivative of sigmoid in 'sigmoid(z)' "
                             "applied twice",)


def test_a_factor_of_the_spec_is_tied_to_where_it_is_written(tmp_path: Path, problem_set) -> None:
    out = graded(tmp_path, problem_set, {"def dL_dh(h): return 6 * h": "def dL_dh(h): return 2 * h"})["dL_dh"]
    assert out.diagnosis[0] == "off by a constant factor of 0.333333 (the factor 3 of '3 * h ** 2' left out?)"


def test_the_exponent_counted_twice_is_one_explanation_of_a_factor(tmp_path: Path, problem_set) -> None:
    out = graded(tmp_path, problem_set, {"def dL_dh(h): return 6 * h": "def dL_dh(h): return 12 * h"})["dL_dh"]
    assert out.diagnosis[0] == "off by a constant factor of 2 (the factor 2 of 'h ** 2' counted twice?)"


def test_wrong_only_where_an_argument_is_negative(tmp_path: Path, problem_set) -> None:
    out = graded(tmp_path, problem_set, {"np.where(x > 0, 1.0, 0.1)": "np.where(x > 0, 1.0, 0.2)"})["d_leaky"]
    assert out.diagnosis == ("wrong only where x < 0; right elsewhere: check that case of your formula",)


def test_the_exact_gelu_for_the_tanh_approximation_is_named(tmp_path: Path, problem_set) -> None:
    exact = ("def gelu_value(x):\n    from math import erf\n"
             "    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))")
    out = graded(tmp_path, problem_set, {RIGHT.splitlines()[12]: exact})["gelu_value"]
    assert out.diagnosis == ("equals the expected value computed with the exact GELU x·Φ(x) (with the normal CDF), "
                             "not the tanh approximation asked here for 'gelu(x)'",)


def test_a_jacobian_flattened_column_by_column_is_named(tmp_path: Path, problem_set) -> None:
    out = graded(tmp_path, problem_set, {"(2 * (1 - np.tanh(X) ** 2)).reshape(-1)":
                                         "(2 * (1 - np.tanh(X) ** 2)).T.reshape(-1)"})["jac_Y"]
    assert out.status == "failed"
    assert out.diagnosis == ("the Jacobian with y and x flattened column by column (vec, as many texts write it); "
                             "this question flattens row by row, as NumPy's reshape does",)


def test_an_unflattened_jacobian_is_named_with_the_reshape_to_use(tmp_path: Path, problem_set) -> None:
    four_d = ("def jac_Y(X):\n    d = 2 * (1 - np.tanh(X) ** 2)\n    m, n = X.shape\n"
              "    return np.einsum('ij,ik,jl->ijkl', d, np.eye(m), np.eye(n))")
    source = RIGHT.split("def jac_Y(X):")[0] + four_d + "\ndef dw_dv" + RIGHT.split("def dw_dv")[1]
    out = graded(tmp_path, problem_set, {RIGHT: source})["jac_Y"]
    [d] = out.diagnosis
    assert d.startswith("the Jacobian as an array of shape (") and "(y.shape + x.shape)" in d and ".reshape(" in d


def test_a_path_left_out_is_named(tmp_path: Path, problem_set) -> None:
    # w = a (v + v), a = v v + v: forgetting the direct path through (v + v) leaves (2v + 1) (v + v)
    out = graded(tmp_path, problem_set, {"return 2 * (3 * v * v + 2 * v)": "return (2 * v + 1) * (v + v)"})["dw_dv"]
    assert out.diagnosis == ("equals the expected value computed with the path into 'v + v' (argument 2 of "
                             "'a * (v + v)') left out: when a quantity reaches the result along several paths, "
                             "add the derivative of every path",)


def test_a_neighbouring_quantity_is_named(tmp_path: Path, problem_set) -> None:
    # the activation handed back where its gradient was asked
    out = graded(tmp_path, problem_set, {"return 6 * h * h * (1 - h)": "return h"})["dL_dz"]
    assert out.diagnosis == ("equals 'h', not 'grad(L, z)': the value of a neighbouring quantity?",)


def test_a_neighbour_is_not_said_when_a_path_mistake_explains_the_answer(tmp_path: Path, problem_set) -> None:
    # 6 h is dL/dh, and also dL/dz with sigmoid' forgotten: the second says more, so only it is said
    out = graded(tmp_path, problem_set, {"return 6 * h * h * (1 - h)": "return 6 * h"})["dL_dz"]
    assert len(out.diagnosis) == 1 and "sigmoid' (...)".replace(" ", "") in out.diagnosis[0]


def test_a_wrong_answer_that_fits_no_hypothesis_gets_none(tmp_path: Path, problem_set) -> None:
    out = graded(tmp_path, problem_set, {"return 2 * (3 * v * v + 2 * v)": "return np.cos(v) + 3"})["dw_dv"]
    assert out.status == "failed" and out.diagnosis == ()


def test_a_batch_works_out_each_mistake_on_a_trial_once(tmp_path: Path, problem_set, monkeypatch) -> None:
    import grader.diagnose_graph as graph
    from grader.grading import grade_planned
    from grader.plan import make_plan

    evaluated: list[str] = []
    real = graph._evaluate_mistaken
    monkeypatch.setattr(graph, "_evaluate_mistaken", lambda node, t, m: evaluated.append(m.description) or
                        real(node, t, m))
    path = tmp_path / "student.py"
    path.write_text(RIGHT.replace("return 6 * h * h * (1 - h)", "return 6 * h"))
    plan = make_plan(problem_set, 11, None, 6)  # drawn once, as a batch does for all its submissions
    first = {o.function: o for o in grade_planned(path, plan).outputs}["dL_dz"]
    count = len(evaluated)
    second = {o.function: o for o in grade_planned(path, plan).outputs}["dL_dz"]
    assert count > 0 and len(evaluated) == count  # the second student's answer is tried on the same values
    assert first.diagnosis == second.diagnosis and "sigmoid" in first.diagnosis[0]
