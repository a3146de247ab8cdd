"""Reverse mode over a program's values: backward passes and the three kinds of derivative.

A backward pass is compiled once for a quantity and the leaves it differentiates by:
the nodes that depend on one of those leaves (the live ones), in reverse order,
each with its VJP and the slots of its operands, so that a pass is a loop over
prepared entries. Cotangents are summed in the order of the nodes, the order the
graph itself gives, so every evaluation of the same graph gives the same bits.

- ``grad(f, x)``: f must be a scalar; the result has x's shape.
- ``jacobian(y, x)``: shape ``y.shape + x.shape`` when both are at most vectors
  (the natural ``(len(y), len(x))``), otherwise ``(y.size, x.size)`` with both
  flattened in row-major order; ``J[i, j] = d y_i / d x_j``.
- ``derivative(y, x)``: the element-wise derivative of an element-wise y; it has
  x's shape.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Mapping, Sequence

import numpy as np

from reference.errors import EvaluationError
from reference.graph import Apply, Derivative, Leaf, Node, operands, walk
from reference.ops import Op, PerArgVjp

Array = np.ndarray
_asarray, _FLOAT = np.asarray, np.float64
_ONE = np.ones(())  # the seed of every gradient (its quantity is a scalar), shared: no VJP writes into g
_ONE.flags.writeable = False
Shapes = Mapping[str, tuple[int, ...]]
Gradients = dict[tuple[Node, str], Array]  # computed with a sibling of the same group, not yet asked for
# One entry of a pass: it sends the cotangent of one slot on to its operands (or into the totals).
Entry = Callable[[list, list, dict], None]


@lru_cache(maxsize=8192)
def order(node: Node) -> tuple[Node, ...]:
    """``node``'s operands before ``node``, in the same environment (not inside derivatives).

    Compiling walks a quantity several times (forward, live nodes, backward); nodes are
    immutable, so the walk is kept.
    """
    return tuple(walk(node, operands))


def by_own_leaf(node: Derivative) -> bool:
    """Whether the variable is already a leaf where ``node`` is evaluated (then its quantity shares that graph)."""
    return isinstance(node.at, Leaf) and node.at.name == node.wrt


def gradient_groups(roots: Sequence[Node]) -> dict[Derivative, tuple[str, ...]]:
    """The gradients among ``roots``' nodes that share their quantity with others, each with all their variables.

    One backward pass gives every gradient of such a group, with the numbers a pass per
    variable gives: a node that depends on a variable is only used by nodes that depend on
    it too, so its cotangent sums the same contributions in the same order either way.
    """
    groups: dict[Node, dict[Derivative, str]] = {}
    for root in roots:
        for n in order(root):
            if isinstance(n, Derivative) and n.kind == "grad" and by_own_leaf(n):
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


class Backward:
    """Backward passes from one quantity to the leaves named in ``wrts``, over the values of one program."""

    __slots__ = ("root", "entries", "size")

    def __init__(self, root: Node, wrts: tuple[str, ...], slots: Mapping[Node, int], replace: Mapping[int, Op]) -> None:
        live = _live(root, wrts)
        self.root = slots[root] if root in live else None  # None: nothing depends on the leaves, all zeros
        self.entries = [_entry(n, slots, live, replace) for n in reversed(order(root)) if n in live]
        self.size = max(slots[n] for n in live) + 1 if live else 0

    def __call__(self, values: list, shapes: Shapes, seeds: Sequence[Array]) -> list[dict[str, Array]]:
        """The cotangents of the leaves (of ``shapes``) for each seed cotangent of the quantity."""
        if self.root is None:
            return [{w: np.zeros(s) for w, s in shapes.items()} for _ in seeds]
        return [self._pass(values, shapes, seed) for seed in seeds]

    def _pass(self, values: list, shapes: Shapes, seed: Array) -> dict[str, Array]:
        grads: list = [None] * self.size
        grads[self.root] = np.asarray(seed, dtype=np.float64)
        totals = {w: np.zeros(s) for w, s in shapes.items()}
        for entry in self.entries:
            entry(values, grads, totals)
        return totals


def _live(root: Node, wrts: tuple[str, ...]) -> set[Node]:
    """The nodes of ``root``'s graph whose value depends on one of the leaves ``wrts``."""
    live: set[Node] = set()
    for n in order(root):  # children first
        if (isinstance(n, Leaf) and n.name in wrts) or any(c in live for c in operands(n)):
            live.add(n)
    return live


def _entry(node: Node, slots: Mapping[Node, int], live: set[Node], replace: Mapping[int, Op]) -> Entry:
    slot = slots[node]
    if isinstance(node, Apply):
        vjp = replace.get(id(node), node.op).vjp
        args = tuple(slots[a] for a in node.args)
        live_args = [k for k, a in enumerate(node.args) if a in live]
        if isinstance(vjp, PerArgVjp):
            return _propagate_each(tuple((vjp.each[k], slots[node.args[k]]) for k in live_args), node.params,
                                   slot, args)
        return _propagate(vjp, node.params, slot, args, tuple((k, slots[node.args[k]]) for k in live_args))
    if isinstance(node, Leaf):  # live, so one of the leaves asked for
        return _total(node.name, slot)
    return _refuse(node.text, slot)  # a derivative: live leaves are only ever leaves and op applications


def _propagate(vjp: Callable[..., tuple[Array | None, ...]], params: Mapping[str, object], slot: int,
               args: tuple[int, ...], targets: tuple[tuple[int, int], ...]) -> Entry:
    """Send an op's cotangent to the operands that depend on the leaves (``targets``: position, slot)."""

    def entry(values: list, grads: list, totals: dict) -> None:
        g = grads[slot]
        if g is None:  # nothing reached this node (the VJPs above it gave None)
            return
        if len(args) == 1:  # the common arities without building a list
            cts = vjp(g, values[slot], values[args[0]], **params)
        elif len(args) == 2:
            cts = vjp(g, values[slot], values[args[0]], values[args[1]], **params)
        else:
            cts = vjp(g, values[slot], *[values[a] for a in args], **params)
        for k, target in targets:
            _add_cotangent(grads, target, cts[k])

    return entry


def _propagate_each(targets: tuple[tuple[Callable[..., Array | None], int], ...], params: Mapping[str, object],
                    slot: int, args: tuple[int, ...]) -> Entry:
    """``_propagate`` for a VJP given per argument: only the operands on the path get a cotangent computed."""

    def entry(values: list, grads: list, totals: dict) -> None:
        g = grads[slot]
        if g is None:
            return
        operands = [values[a] for a in args]
        for vjp, target in targets:
            _add_cotangent(grads, target, vjp(g, values[slot], *operands, **params))

    return entry


def _add_cotangent(grads: list, target: int, ct: Array | None) -> None:
    """Add an operand's cotangent (None: the op gives none, e.g. for an integer exponent) to what it holds."""
    if ct is None:
        return
    ct = _asarray(ct, dtype=_FLOAT)
    held = grads[target]
    grads[target] = ct if held is None else held + ct


def _total(name: str, slot: int) -> Entry:
    def entry(values: list, grads: list, totals: dict) -> None:
        g = grads[slot]
        if g is not None:
            totals[name] = totals[name] + g

    return entry


def _refuse(text: str, slot: int) -> Entry:
    def entry(values: list, grads: list, totals: dict) -> None:
        if grads[slot] is not None:
            raise EvaluationError(f"'{text}' lies on a path that is differentiated again; "
                                  "second derivatives are not supported")

    return entry


class Differentiate:
    """One derivative node, compiled: its kind computed from the values of the program holding its quantity.

    ``group`` lists every variable of the gradients that share this one's quantity (see
    ``gradient_groups``); one backward pass serves them all.
    """

    __slots__ = ("node", "f", "backward", "group", "slots", "replace")

    def __init__(self, node: Derivative, slots: Mapping[Node, int], replace: Mapping[int, Op],
                 group: tuple[str, ...] = ()) -> None:
        self.node, self.f, self.group = node, slots[node.f], group
        self.slots, self.replace = slots, replace
        self.backward = Backward(node.f, group or (node.wrt,), slots, replace)

    def __call__(self, values: list, env: Mapping[str, Array], gradients: Gradients, at: Array) -> Array:
        node, f = self.node, values[self.f]
        if node.kind == "grad":
            if f.shape != ():
                raise EvaluationError(f"'{node.text}': grad needs a scalar, but the quantity has shape {f.shape}; "
                                      "use sum(...) for a total, or jacobian / derivative")
            if self.group:
                return self._grouped(values, env, gradients, f)
            return self.backward(values, {node.wrt: at.shape}, [_ONE])[0][node.wrt]
        if node.kind == "derivative":
            if f.shape != at.shape:
                raise EvaluationError(f"'{node.text}': an element-wise derivative needs the quantity {f.shape} "
                                      f"and the variable {at.shape} to have the same shape; use jacobian")
            return self._elementwise(values, f, at.shape)
        return self._jacobian(values, f, at)

    def _grouped(self, values: list, env: Mapping[str, Array], gradients: Gradients, f: Array) -> Array:
        """The gradient from the one backward pass that serves every gradient of its group."""
        node = self.node
        key = (node.f, node.wrt)
        if key not in gradients:
            # a variable without a value is left out: its own gradient will say so when it is evaluated
            shapes = {w: np.shape(env[w]) for w in self.group if w in env}
            backward = self.backward if tuple(shapes) == self.group else \
                Backward(node.f, tuple(shapes), self.slots, self.replace)
            totals = backward(values, shapes, [_ONE])[0]
            gradients.update(((node.f, w), t) for w, t in totals.items())
        return gradients.pop(key)  # popped: a second node asking the same gets its own array

    def _elementwise(self, values: list, f: Array, at_shape: tuple[int, ...]) -> Array:
        # For an element-wise quantity the VJP of any cotangent u is u * d; one random u
        # tells an element-wise quantity from one whose elements mix (softmax, a sum).
        wrt, u = self.node.wrt, _probe(f.shape)
        d, du = (t[wrt] for t in self.backward(values, {wrt: at_shape}, [np.ones(f.shape), u]))
        finite = np.isfinite(d) & np.isfinite(du)  # non-finite values are the caller's to judge, not a structure
        scale = max(1.0, float(np.maximum.reduce(np.abs(d[finite]), axis=None, initial=0.0)))
        if not _allclose(du[finite], (u * d)[finite], rtol=1e-9, atol=1e-12 * scale):
            raise EvaluationError(f"'{self.node.text}' is not element-wise: derivative() needs each output to "
                                  "depend only on the same element of the input; use jacobian")
        return d

    def _jacobian(self, values: list, f: Array, at: Array) -> Array:
        wrt, eye = self.node.wrt, np.eye(f.size)
        rows = [t[wrt] for t in self.backward(values, {wrt: at.shape}, [eye[i].reshape(f.shape)
                                                                         for i in range(f.size)])]
        # the rows flattened one after the other are the (f.size, at.size) matrix in row-major order
        jac = np.concatenate(rows, axis=None) if rows else np.zeros((0, at.size))
        return jac.reshape(jacobian_shape(f.shape, at.shape))


def _allclose(x: Array, y: Array, rtol: float, atol: float) -> bool:
    """``np.allclose(x, y, rtol, atol)`` for float arrays: its comparison, without its cost per call."""
    close = (np.less_equal(np.abs(x - y), atol + rtol * np.abs(y)) & np.isfinite(y)) | np.equal(x, y)
    return bool(np.logical_and.reduce(close, axis=None))
