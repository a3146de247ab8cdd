"""NumPy evaluation of a resolved graph: forward values and reverse-mode derivatives.

``evaluate(node, env)`` computes a node's value from the values of its leaves.
A ``Derivative`` node is computed by reverse mode over its own sub-graph, using
each op's hand-written VJP:

- ``grad(f, x)``: f must be a scalar; the result has x's shape.
- ``jacobian(y, x)``: shape ``y.shape + x.shape`` when both are at most vectors
  (the natural ``(len(y), len(x))``), otherwise ``(y.size, x.size)`` with both
  flattened in row-major order; ``J[i, j] = d y_i / d x_j``.
- ``derivative(y, x)``: the element-wise derivative of an element-wise y; it has
  x's shape.

An ``observe`` callback sees every op application with its argument values;
sampling uses it to measure how close a draw came to an op's kink. ``replace``
swaps the op of chosen nodes (by ``id``) for another: the diagnoses re-evaluate a
reference with one derivative factor dropped or one function confused, to test
a hypothesis about a student's mistake against the numbers.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Mapping, Sequence

import numpy as np

from reference.errors import EvaluationError
from reference.graph import Apply, Constant, Derivative, Leaf, Node, operands, walk
from reference.ops import Op

Array = np.ndarray
Observer = Callable[[Apply, tuple[Array, ...]], None]
_NUMPY_ERRORS = (ValueError, TypeError, IndexError, ZeroDivisionError, np.linalg.LinAlgError)


def evaluate(node: Node, env: Mapping[str, Array], observe: Observer | None = None,
             replace: Mapping[int, Op] | None = None) -> Array:
    """The float64 value of ``node`` given the values of its leaves (and ops replaced by node id)."""
    with np.errstate(all="ignore"):  # non-finite values are judged by the caller, not warned about
        return _Evaluator(env, observe, replace or {}, (node,)).value(node)


def evaluate_all(nodes: Sequence[Node], env: Mapping[str, Array], observe: Observer | None = None) -> list[Array]:
    """The values of several nodes over the same leaves, computing what they share once."""
    with np.errstate(all="ignore"):
        ev = _Evaluator(env, observe, {}, tuple(nodes))
        return [ev.value(n) for n in nodes]


@lru_cache(maxsize=8192)
def _order(node: Node) -> tuple[Node, ...]:
    """``node``'s operands before ``node``: the same for every trial, so walked once (nodes are immutable)."""
    return tuple(walk(node, operands))


@lru_cache(maxsize=8192)
def _live(root: Node, wrts: tuple[str, ...]) -> frozenset[Node]:
    """The nodes of ``root``'s graph whose value depends on one of the leaves ``wrts``."""
    live: set[Node] = set()
    for n in _order(root):  # children first
        if (isinstance(n, Leaf) and n.name in wrts) or any(c in live for c in operands(n)):
            live.add(n)
    return frozenset(live)


def _by_own_leaf(node: Derivative) -> bool:
    """Whether the variable is already a leaf where ``node`` is evaluated (then its quantity shares that graph)."""
    return isinstance(node.at, Leaf) and node.at.name == node.wrt


@lru_cache(maxsize=4096)
def _gradient_groups(roots: tuple[Node, ...]) -> Mapping[Derivative, tuple[str, ...]]:
    """The gradients among ``roots``' nodes that share their quantity with others, each with all their variables.

    One backward pass gives every gradient of such a group, with the numbers a pass per
    variable gives: a node that depends on a variable is only used by nodes that depend on
    it too, so its cotangent sums the same contributions in the same order either way.
    """
    groups: dict[Node, dict[Derivative, str]] = {}
    for root in roots:
        for n in _order(root):
            if isinstance(n, Derivative) and n.kind == "grad" and _by_own_leaf(n):
                groups.setdefault(n.f, {})[n] = n.wrt
    return {d: tuple(dict.fromkeys(g.values())) for g in groups.values() if len(set(g.values())) > 1 for d in g}


@lru_cache(maxsize=256)
def _probe(shape: tuple[int, ...]) -> Array:
    """The fixed random cotangent that tells an element-wise quantity of this shape from one that mixes."""
    u = np.random.default_rng(0).uniform(0.5, 1.5, size=shape)
    u.flags.writeable = False  # shared by every evaluation
    return u


def jacobian_shape(f_shape: tuple[int, ...], x_shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(f_shape) <= 1 and len(x_shape) <= 1:
        return f_shape + x_shape
    return (int(np.prod(f_shape)), int(np.prod(x_shape)))


class _Evaluator:
    """Values of the nodes of one environment, each computed once (the memo is keyed by the node itself:
    nodes hash by identity)."""

    __slots__ = ("env", "observe", "replace", "memo", "groups", "gradients")

    def __init__(self, env: Mapping[str, Array], observe: Observer | None, replace: Mapping[int, Op],
                 roots: tuple[Node, ...] = ()) -> None:
        self.env = env
        self.observe = observe
        self.replace = replace
        self.memo: dict[Node, Array] = {}
        self.groups = _gradient_groups(roots)
        self.gradients: dict[tuple[Node, str], Array] = {}  # computed with a sibling, not yet asked for

    def op(self, node: Apply) -> Op:
        return self.replace.get(id(node), node.op) if self.replace else node.op

    def value(self, node: Node) -> Array:
        memo = self.memo
        if node not in memo:
            for n in _order(node):  # children first, so no deep recursion
                if n not in memo:
                    # most nodes are op applications: test for them before the general dispatch
                    memo[n] = self._apply(n) if type(n) is Apply else self._compute(n)
        return memo[node]

    def _compute(self, node: Node) -> Array:
        if isinstance(node, Apply):
            return self._apply(node)
        if isinstance(node, Leaf):
            if node.name not in self.env:
                raise EvaluationError(f"no value given for '{node.name}'")
            return np.asarray(self.env[node.name], dtype=np.float64)
        if isinstance(node, Constant):
            return node.value
        return self._derivative(node)

    def _apply(self, node: Apply) -> Array:
        memo = self.memo
        args = tuple([memo[a] for a in node.args])
        if self.observe is not None:
            self.observe(node, args)
        op = self.replace.get(id(node), node.op) if self.replace else node.op
        try:
            out = op.forward(*args, **node.params)
        except EvaluationError as exc:
            raise EvaluationError(f"in '{node.text}': {exc}") from None
        except _NUMPY_ERRORS as exc:
            shapes = ", ".join(str(a.shape) for a in args)
            raise EvaluationError(f"in '{node.text}': {node.op.name} of shapes {shapes}: {exc}") from None
        return np.asarray(out, dtype=np.float64)

    def _inner(self, node: Derivative, at: Array) -> _Evaluator:
        """The evaluator of ``node``'s quantity, where its variable is a leaf with the value ``at``."""
        if _by_own_leaf(node):
            # The variable is already a leaf here, so the quantity's graph is this one's and
            # its environment is this one's: share the values instead of computing them again.
            return self
        return _Evaluator({**self.env, node.wrt: at}, self.observe, self.replace)

    def _derivative(self, node: Derivative) -> Array:
        at = self.memo[node.at]
        inner = self._inner(node, at)
        f = inner.value(node.f)
        if node.kind == "grad":
            if f.shape != ():
                raise EvaluationError(f"'{node.text}': grad needs a scalar, but the quantity has shape {f.shape}; "
                                      "use sum(...) for a total, or jacobian / derivative")
            if node in self.groups:
                return self._grouped_gradient(node, f)
            return _cotangents(node.f, node.wrt, at.shape, [np.ones_like(f)], inner)[0]
        if node.kind == "derivative":
            if f.shape != at.shape:
                raise EvaluationError(f"'{node.text}': an element-wise derivative needs the quantity {f.shape} "
                                      f"and the variable {at.shape} to have the same shape; use jacobian")
            return _elementwise(node, f, at.shape, inner)
        eye = np.eye(f.size)
        rows = _cotangents(node.f, node.wrt, at.shape, [eye[i].reshape(f.shape) for i in range(f.size)], inner)
        jac = np.stack([r.reshape(-1) for r in rows]) if rows else np.zeros((0, at.size))
        return jac.reshape(jacobian_shape(f.shape, at.shape))

    def _grouped_gradient(self, node: Derivative, f: Array) -> Array:
        """``node``'s gradient from the one backward pass that serves every gradient of its group."""
        key = (node.f, node.wrt)
        if key not in self.gradients:
            # a variable without a value is left out: its own gradient will say so when it is evaluated
            shapes = {w: np.shape(self.env[w]) for w in self.groups[node] if w in self.env}
            totals = _backward(node.f, shapes, [np.ones_like(f)], self)[0]
            self.gradients.update(((node.f, w), t) for w, t in totals.items())
        return self.gradients.pop(key)  # popped: a second node asking the same gets its own array


def _elementwise(node: Derivative, f: Array, at_shape: tuple[int, ...], inner: _Evaluator) -> Array:
    # For an element-wise quantity the VJP of any cotangent u is u * d; one random u
    # tells an element-wise quantity from one whose elements mix (softmax, a sum).
    u = _probe(f.shape)
    d, du = _cotangents(node.f, node.wrt, at_shape, [np.ones_like(f), u], inner)
    finite = np.isfinite(d) & np.isfinite(du)  # non-finite values are the caller's to judge, not a structure
    scale = max(1.0, float(np.max(np.abs(d[finite]), initial=0.0)))
    if not np.allclose(du[finite], (u * d)[finite], rtol=1e-9, atol=1e-12 * scale):
        raise EvaluationError(f"'{node.text}' is not element-wise: derivative() needs each output to depend "
                              "only on the same element of the input; use jacobian")
    return d


def _cotangents(root: Node, wrt: str, at_shape: tuple[int, ...], seeds: list[Array], ev: _Evaluator) -> list[Array]:
    """Cotangents of the leaf ``wrt`` (of shape ``at_shape``) for each seed cotangent of ``root``'s value."""
    return [totals[wrt] for totals in _backward(root, {wrt: at_shape}, seeds, ev)]


def _backward(root: Node, shapes: Mapping[str, tuple[int, ...]], seeds: list[Array], ev: _Evaluator
              ) -> list[dict[str, Array]]:
    """Cotangents of the leaves named in ``shapes`` (with their shapes) for each seed cotangent of ``root``.

    Runs inside ``evaluate``'s error state, like everything the evaluator computes.
    """
    live = _live(root, tuple(shapes))
    if root not in live:
        return [{w: np.zeros(s) for w, s in shapes.items()} for _ in seeds]
    order = _order(root)
    return [_backward_one(order, live, root, shapes, seed, ev) for seed in seeds]


def _backward_one(order: Sequence[Node], live: frozenset[Node], root: Node, shapes: Mapping[str, tuple[int, ...]],
                  seed: Array, ev: _Evaluator) -> dict[str, Array]:
    grads: dict[Node, Array] = {root: np.asarray(seed, dtype=np.float64)}
    totals = {w: np.zeros(s) for w, s in shapes.items()}
    for node in reversed(order):
        g = grads.pop(node, None)
        if g is None:
            continue
        if isinstance(node, Apply):
            _propagate(node, g, live, grads, ev)
        elif isinstance(node, Leaf):  # live, so one of the leaves asked for
            totals[node.name] = totals[node.name] + g
        elif isinstance(node, Derivative):
            raise EvaluationError(f"'{node.text}' lies on a path that is differentiated again; "
                                  "second derivatives are not supported")
    return totals


def _propagate(node: Apply, g: Array, live: frozenset[Node], grads: dict[Node, Array], ev: _Evaluator) -> None:
    memo = ev.memo
    cts = ev.op(node).vjp(g, memo[node], *[memo[a] for a in node.args], **node.params)
    for arg, ct in zip(node.args, cts):
        if ct is None or arg not in live:
            continue
        ct = np.asarray(ct, dtype=np.float64)
        grads[arg] = grads[arg] + ct if arg in grads else ct
