"""The semantics of reference.evaluate, and the torch evaluator agreeing with it."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pytest

from grader.torch_eval import evaluate_torch
from reference.errors import EvaluationError
from reference.evaluate import evaluate, evaluate_all
from reference.expr import parse
from reference.graph import Graph, Node

Array = np.ndarray

NET = {
    "z1": "W1 @ x + b1",
    "z2": "5 * relu(z1)",
    "z3": "W2 @ z2 + b2",
    "loss": "sum((z3 - y) ** 2)",
}
INPUTS = frozenset({"W1", "x", "b1", "W2", "b2", "y", "z", "t", "v", "M", "a"})


def _graph() -> Graph:
    return Graph({name: parse(text) for name, text in NET.items()}, INPUTS)


def _resolve(text: str, leaves: frozenset[str] = INPUTS) -> Node:
    return _graph().resolve(parse(text), leaves)


def _env(seed: int = 0) -> dict[str, Array]:
    rng = np.random.default_rng(seed)
    n, h, k = 4, 5, 3  # input, hidden and output sizes
    return {
        "W1": rng.normal(size=(h, n)), "x": rng.normal(size=n), "b1": rng.normal(size=h),
        "W2": rng.normal(size=(k, h)), "b2": rng.normal(size=k), "y": rng.normal(size=k),
        "z": rng.normal(size=6), "t": np.array(0.7), "v": rng.normal(size=3),
        "M": rng.normal(size=(2, 3)), "a": rng.normal(size=2),
    }


def _value(text: str, env: Mapping[str, Array], leaves: frozenset[str] = INPUTS) -> Array:
    return evaluate(_resolve(text, leaves), env)


def _backprop(e: Mapping[str, Array]) -> dict[str, Array]:
    """Gradients of the 2-layer net's loss, written out by hand."""
    z1 = e["W1"] @ e["x"] + e["b1"]
    z2 = 5.0 * np.maximum(z1, 0.0)
    z3 = e["W2"] @ z2 + e["b2"]
    dz3 = 2.0 * (z3 - e["y"])
    dz1 = 5.0 * (e["W2"].T @ dz3) * (z1 > 0)
    return {"W2": np.outer(dz3, z2), "b2": dz3, "W1": np.outer(dz1, e["x"]), "b1": dz1, "x": e["W1"].T @ dz1}


# --- grad -------------------------------------------------------------------------


@pytest.mark.parametrize("wrt", ["W1", "b1", "W2", "b2", "x"])
def test_grad_of_the_net_matches_hand_backprop(wrt: str) -> None:
    env = _env()
    got = _value(f"grad(loss, {wrt})", env)
    assert got.shape == env[wrt].shape
    np.testing.assert_allclose(got, _backprop(env)[wrt], rtol=1e-12, atol=1e-12)


def test_gradients_by_several_leaves_share_one_forward_pass() -> None:
    env = _env()
    graph = _graph()  # one graph, so the three share their nodes as a problem's questions do
    nodes = [graph.resolve(parse(f"grad(loss, {wrt})"), INPUTS) for wrt in ("W1", "b1", "W2")]
    seen: list[str] = []
    values = evaluate_all(nodes, env, observe=lambda node, args: seen.append(node.text))
    assert seen.count("W1 @ x") == 1 and seen.count("(z3 - y) ** 2") == 1
    for wrt, value in zip(("W1", "b1", "W2"), values):
        np.testing.assert_allclose(value, _backprop(env)[wrt], rtol=1e-12, atol=1e-12)


def test_gradients_computed_together_equal_each_computed_alone_bit_for_bit() -> None:
    env, graph = _env(2), _graph()
    texts = ["grad(loss, W1)", "W2 - 0.1 * grad(loss, W2)", "grad(loss, b1)", "grad(loss, x)"]
    together = evaluate_all([graph.resolve(parse(t), INPUTS) for t in texts], env)
    for text, value in zip(texts, together):
        np.testing.assert_array_equal(value, _value(text, env))


def test_grad_of_a_non_scalar_is_an_error() -> None:
    with pytest.raises(EvaluationError, match="grad needs a scalar"):
        _value("grad(z3, W2)", _env())


def test_grad_inside_an_update_step() -> None:
    env = _env()
    got = _value("W1 - 0.1 * grad(loss, W1)", env)
    np.testing.assert_allclose(got, env["W1"] - 0.1 * _backprop(env)["W1"], rtol=1e-12, atol=1e-12)


# --- jacobian ---------------------------------------------------------------------


def test_jacobian_of_vector_by_vector_has_the_natural_shape() -> None:
    env = _env()
    got = _value("jacobian(z1, x)", env)
    np.testing.assert_allclose(got, env["W1"], rtol=1e-12, atol=1e-12)


def test_jacobian_of_a_scalar_by_a_vector_is_a_vector() -> None:
    env = _env()
    assert _value("jacobian(sum(x), x)", env).shape == env["x"].shape


def test_jacobian_by_a_matrix_is_flattened_row_major() -> None:
    env = _env()
    got = _value("jacobian(M @ v, M)", env)  # (2,) by (2, 3)
    expected = np.zeros((2, 2, 3))
    for i in range(2):
        expected[i, i, :] = env["v"]  # d (Mv)_i / d M_ij = v_j
    assert got.shape == (2, 6)
    np.testing.assert_allclose(got, expected.reshape(2, 6), rtol=1e-12, atol=1e-12)


def test_jacobian_at_an_inner_node_treats_it_as_a_leaf() -> None:
    z1 = np.array([0.5, -1.0, 2.0, -0.3, 0.1])
    got = _value("jacobian(z2, z1)", {"z1": z1}, leaves=frozenset({"z1"}))
    np.testing.assert_array_equal(got, np.diag(5.0 * (z1 > 0)))


# --- derivative -------------------------------------------------------------------


def test_derivative_is_element_wise() -> None:
    env = _env()
    np.testing.assert_allclose(_value("derivative(tanh(z), z)", env), 1 - np.tanh(env["z"]) ** 2, rtol=1e-12)


def test_derivative_needs_matching_shapes() -> None:
    with pytest.raises(EvaluationError, match="same shape"):
        _value("derivative(sum(z), z)", _env())


# --- the torch evaluator agrees -----------------------------------------------------

AGREEING = [
    "loss",
    "grad(loss, W1)",
    "W1 - 0.1 * grad(loss, W1)",
    "softmax(1000 * z)",
    "[[cos(t), -sin(t)], [sin(t), cos(t)]]",
    "jacobian(softmax(z), z)",
    "jacobian(M @ v, M)",
    "jacobian(z3, W1)",
    "derivative(gelu(z), z)",
    "z * derivative(tanh(z), z) + 1",
    "jacobian(a * sum(grad(loss, W1)), a)",  # a grad inside a function that jacobian differentiates
    "derivative(a * sum(jacobian(z3, x)), a)",
]


@pytest.mark.parametrize("text", AGREEING)
def test_torch_evaluator_agrees_with_numpy(text: str) -> None:
    node, env = _resolve(text), _env(1)
    expected = evaluate(node, env)
    got = evaluate_torch(node, env)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("text", ["derivative(softmax(z), z)", "derivative(z * sum(z), z)"])
def test_both_evaluators_reject_a_derivative_that_is_not_element_wise(text: str) -> None:
    with pytest.raises(EvaluationError, match="not element-wise"):
        evaluate_torch(_resolve(text), _env())
    with pytest.raises(EvaluationError, match="not element-wise"):
        evaluate(_resolve(text), _env())


def test_torch_evaluator_keeps_the_reference_errors() -> None:
    with pytest.raises(EvaluationError, match="grad needs a scalar"):
        evaluate_torch(_resolve("grad(z3, W2)"), _env())
    with pytest.raises(EvaluationError, match="same shape"):
        evaluate_torch(_resolve("derivative(sum(z), z)"), _env())


def test_a_mutation_is_compiled_once_for_every_evaluation_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # a batch diagnoses the same mistake in many submissions: the mutations and their programs are kept
    import reference.evaluate as evaluate_module
    from reference.mutations import mutations

    node = _resolve("grad(loss, W1)")
    found = mutations(node)
    assert found and mutations(node) is found
    compiled: list[object] = []
    original = evaluate_module.compile_program
    monkeypatch.setattr(evaluate_module, "compile_program", lambda *a: compiled.append(a) or original(*a))
    first = [evaluate(node, _env(seed), replace=m.replace) for m in mutations(node) for seed in (1, 2)]
    count = len(compiled)
    again = [evaluate(node, _env(seed), replace=m.replace) for m in mutations(node) for seed in (1, 2)]
    assert len(compiled) == count  # nothing compiled the second time
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(first, again))
