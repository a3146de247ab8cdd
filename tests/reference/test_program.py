"""Compiled programs keep the evaluator's semantics: checked on random graphs against direct evaluation and torch."""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
import pytest

from grader.torch_eval import evaluate_torch
from reference.errors import EvaluationError, ExpressionError
from reference.evaluate import evaluate, evaluate_all
from reference.expr import parse
from reference.graph import Apply, Constant, Graph, Leaf, Node, operands, walk
from reference.ops import OPS, PerArgVjp
from reference.program import compile_program
from reference.reverse import _allclose

Array = np.ndarray
N = 4  # the length of every vector leaf
LEAVES = frozenset({"x", "y", "v", "M", "t"})  # vectors x, y, v; M is N x N; t a scalar
SMOOTH = ["tanh({})", "sin({})", "sigmoid({})", "softplus({})", "gelu({})", "exp(0.3 * {})", "({}) ** 2",
          "relu({})", "abs({})", "-{}", "cos({})"]
MIXING = ["M @ ({})", "softmax({})", "({}) * sum({})", "logsumexp({}) + {}", "max({}) * {}", "({}) / (2 + t * t)"]


def _env(seed: int) -> dict[str, Array]:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=N), "y": rng.normal(size=N), "v": rng.normal(size=N),
            "M": rng.normal(size=(N, N)), "t": np.asarray(rng.normal())}


def _vector_expr(rng: np.random.Generator, depth: int, names: list[str]) -> str:
    """A random vector-valued expression over the leaves and the named nodes defined so far."""
    if depth == 0:
        return str(rng.choice(names + ["x", "y", "v"]))
    a = _vector_expr(rng, depth - 1, names)
    pick = rng.integers(4)
    if pick == 0:
        return str(rng.choice(SMOOTH)).format(a)
    if pick == 1:
        return str(rng.choice(MIXING)).format(a, a)
    b = _vector_expr(rng, depth - 1, names)
    return f"({a}) {rng.choice(['+', '-', '*'])} ({b})"


def _random_graph(seed: int) -> tuple[Graph, list[str]]:
    """Named vector nodes z0, z1, ... (later ones use earlier ones, so nodes are shared) and their names."""
    rng = np.random.default_rng(seed)
    nodes: dict[str, str] = {}
    for i in range(4):
        nodes[f"z{i}"] = _vector_expr(rng, int(rng.integers(1, 4)), list(nodes))
    return Graph({n: parse(t) for n, t in nodes.items()}, LEAVES), list(nodes)


def _quantities(seed: int) -> list[str]:
    """Outputs of a random graph: values, and every kind of derivative, by leaves and by inner nodes."""
    rng = np.random.default_rng(seed + 1000)
    z, w = (f"z{i}" for i in rng.permutation(4)[:2])
    by = str(rng.choice(["x", "y", "M"]))
    return [z, f"sum({w} * {w})", f"grad(sum({z}), {by})", f"grad(sum({z} * {w}), x)", f"grad(sum({w}), y)",
            f"jacobian({z}, x)", f"jacobian({w}, {z})", f"derivative(tanh({z}), {z})", f"grad(sum({w}), {z}) * t"]


def _resolve(graph: Graph, texts: list[str]) -> list[Node]:
    """The graphs of those of ``texts`` that resolve (a derivative of a quantity that does not depend on its
    variable is refused when it is resolved)."""
    nodes = []
    for text in texts:
        try:
            nodes.append(graph.resolve(parse(text), LEAVES))
        except ExpressionError:
            continue
    return nodes


def _direct(node: Node, env: Mapping[str, Array]) -> Array:
    """The forward value computed the plainest way: recursion with every op's forward, nothing shared."""
    if isinstance(node, Leaf):
        return np.asarray(env[node.name], dtype=np.float64)
    if isinstance(node, Constant):
        return node.value
    assert isinstance(node, Apply)
    return np.asarray(node.op.forward(*[_direct(a, env) for a in node.args], **node.params), dtype=np.float64)


def _identical(a: Array, b: Array) -> bool:
    return a.dtype == b.dtype == np.float64 and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("seed", range(12))
def test_forward_values_equal_a_direct_evaluation_bit_for_bit(seed: int) -> None:
    graph, names = _random_graph(seed)
    nodes, env = _resolve(graph, names), _env(seed)
    with np.errstate(all="ignore"):
        expected = [_direct(n, env) for n in nodes]
    assert all(_identical(g, e) for g, e in zip(evaluate_all(nodes, env), expected, strict=True))


@pytest.mark.parametrize("seed", range(12))
def test_derivatives_agree_with_torch_autograd(seed: int) -> None:
    graph, _ = _random_graph(seed)
    env = _env(seed)
    for node in _resolve(graph, _quantities(seed)):
        expected = evaluate_torch(node, env)
        got = evaluate(node, env)
        assert got.shape == expected.shape, node.text
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-11, err_msg=node.text)


@pytest.mark.parametrize("seed", range(12))
def test_quantities_evaluated_together_equal_each_evaluated_alone_bit_for_bit(seed: int) -> None:
    # together they share slots and one backward pass per group of gradients
    graph, _ = _random_graph(seed)
    nodes, env = _resolve(graph, _quantities(seed)), _env(seed)
    together = _values_or_errors(lambda: evaluate_all(nodes, env))
    if together is None:  # one of them raised: each alone must raise or succeed like the others
        return
    assert all(_identical(t, evaluate(n, env)) for t, n in zip(together, nodes, strict=True))


def _values_or_errors(run) -> list[Array] | None:
    try:
        return run()
    except EvaluationError:
        return None


def test_a_program_run_again_on_other_leaves_gives_what_a_fresh_program_gives() -> None:
    texts = ["grad(sum(z0 * z3), x)", "grad(sum(z0 * z3), y)", "jacobian(z3, x)", "z3"]
    program = compile_program(_resolve(_random_graph(3)[0], texts))
    for seed in (1, 2, 1):  # nothing of one run stays for the next
        fresh = compile_program(_resolve(_random_graph(3)[0], texts))  # new nodes, compiled anew
        assert all(_identical(v, f) for v, f in zip(program.run(_env(seed)), fresh.run(_env(seed)), strict=True))


@pytest.mark.parametrize("seed", range(6))
def test_the_observer_sees_each_application_once_operands_first(seed: int) -> None:
    graph, names = _random_graph(seed)
    nodes = _resolve(graph, names)
    seen: list[Node] = []
    evaluate_all(nodes, _env(seed), observe=lambda node, args: seen.append(node))
    order: list[Node] = []
    for root in nodes:
        order += [n for n in walk(root, operands) if isinstance(n, Apply) and n not in order]
    assert seen == order


def test_an_op_replaced_by_node_id_is_used_forward_and_backward() -> None:
    graph = Graph({"h": parse("tanh(x)")}, LEAVES)
    node = graph.resolve(parse("grad(sum(h * v), x)"), LEAVES)
    tanh = next(n for n in walk(node) if isinstance(n, Apply) and n.op.name == "tanh")
    sin = dataclasses.replace(OPS["tanh"], forward=OPS["sin"].forward, vjp=OPS["sin"].vjp)
    env = _env(0)
    np.testing.assert_array_equal(evaluate(node, env, replace={id(tanh): sin}), env["v"] * np.cos(env["x"]))
    np.testing.assert_allclose(evaluate(node, env), env["v"] * (1 - np.tanh(env["x"]) ** 2), rtol=1e-15)


@pytest.mark.parametrize("seed", range(6))
def test_skipping_the_cotangents_off_the_path_changes_no_bit(seed: int) -> None:
    # the same graph with every per-argument VJP replaced by one that computes all the cotangents
    graph, _ = _random_graph(seed)
    nodes, env = _resolve(graph, _quantities(seed)), _env(seed)
    whole = {id(n): dataclasses.replace(n.op, vjp=_all_at_once(n.op.vjp))
             for root in nodes for n in walk(root) if isinstance(n, Apply) and isinstance(n.op.vjp, PerArgVjp)}
    assert whole, "the random graphs must use ops with per-argument VJPs"
    for node in nodes:
        fast = _values_or_errors(lambda: [evaluate(node, env)])
        slow = _values_or_errors(lambda: [compile_program((node,), whole).run(env)[0]])
        assert (fast is None) == (slow is None)
        assert fast is None or _identical(fast[0], slow[0])


def _all_at_once(vjp: PerArgVjp):
    return lambda g, o, *args, **params: vjp(g, o, *args, **params)


def test_a_missing_leaf_and_a_failing_op_name_what_failed() -> None:
    graph = Graph({}, LEAVES)
    with pytest.raises(EvaluationError, match="no value given for 'v'"):
        evaluate(graph.resolve(parse("x + v"), LEAVES), {"x": np.ones(3)})
    with pytest.raises(EvaluationError, match=r"in 'x @ M': shapes \(3,\) @ \(4, 4\) do not fit"):
        evaluate(graph.resolve(parse("x @ M"), LEAVES), {"x": np.ones(3), "M": np.ones((4, 4))})
    with pytest.raises(EvaluationError, match=r"in 'x \+ y': add of shapes \(3,\), \(4,\)"):
        evaluate(graph.resolve(parse("x + y"), LEAVES), {"x": np.ones(3), "y": np.ones(4)})


def test_the_element_wise_check_compares_as_np_allclose_does() -> None:
    rng = np.random.default_rng(0)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e308, 5e-324])
    for _ in range(3000):
        x = rng.choice(special, size=3) if rng.random() < 0.3 else rng.normal(size=3) * 10.0 ** rng.integers(-20, 300)
        y = x * (1 + rng.choice([0.0, 1e-12, 1e-9, 3e-9], size=3)) + rng.choice([0.0, 1e-13, 1e-11], size=3)
        y[rng.random(3) < 0.1] = rng.choice(special)
        atol = 1e-12 * float(rng.choice([1.0, 1e5, 1e300]))
        with np.errstate(all="ignore"):
            assert _allclose(x, y, rtol=1e-9, atol=atol) == np.allclose(x, y, rtol=1e-9, atol=atol), (x, y, atol)


def test_each_replacement_mapping_gets_its_own_program() -> None:
    # a diagnosis reuses one mapping on every failing trial; another mapping, even equal, is compiled anew
    graph = Graph({}, LEAVES)
    node = graph.resolve(parse("tanh(x) * v"), LEAVES)
    tanh = next(n for n in walk(node) if isinstance(n, Apply) and n.op.name == "tanh")
    to_sin = {id(tanh): dataclasses.replace(OPS["tanh"], forward=OPS["sin"].forward)}
    to_cos = {id(tanh): dataclasses.replace(OPS["tanh"], forward=OPS["cos"].forward)}
    for env in (_env(0), _env(1), _env(0)):
        np.testing.assert_array_equal(evaluate(node, env, replace=to_sin), np.sin(env["x"]) * env["v"])
        np.testing.assert_array_equal(evaluate(node, env, replace=to_cos), np.cos(env["x"]) * env["v"])
        np.testing.assert_array_equal(evaluate(node, env), np.tanh(env["x"]) * env["v"])
