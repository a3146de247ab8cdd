"""A resolved graph compiled into a program: the steps that compute its values, decided once.

Evaluating a graph node by node dispatches on every node's type, keys a memo by
node and walks the graph again for every environment, which costs more than the
arithmetic on the small arrays of a trial. A program does that work once: every
node gets a slot in a list of values, and a run is a loop over prepared steps,
each filling one slot from others.

The steps are those of evaluating each root in turn, operands first, each node
once, with a derivative's quantity computed just before the derivative. A
derivative whose variable is already a leaf of the graph computes its quantity in
the same slots; any other runs a program of its own, over the environment with
its variable as a leaf (see ``reference.evaluate`` for the semantics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from reference.errors import EvaluationError
from reference.graph import Apply, Constant, Derivative, Leaf, Node
from reference.ops import Op
from reference.reverse import Differentiate, Gradients, by_own_leaf, gradient_groups, order

Array = np.ndarray
Observer = Callable[[Apply, tuple[Array, ...]], None]
_ERRORS = (EvaluationError, ValueError, TypeError, IndexError, ZeroDivisionError, np.linalg.LinAlgError)
_asarray, _FLOAT = np.asarray, np.float64


class Run:
    """What the steps of one run share: the leaves' values, the observer and gradients computed ahead."""

    __slots__ = ("env", "observe", "gradients")

    def __init__(self, env: Mapping[str, Array], observe: Observer | None) -> None:
        self.env = env
        self.observe = observe
        self.gradients: Gradients = {}


Step = Callable[[list, Run], None]


@dataclass(frozen=True, eq=False)
class Program:
    """The values of some roots from the values of their leaves."""

    slots: Mapping[Node, int]  # every node computed, in this program's own environment
    steps: tuple[Step, ...]
    start: tuple[Array | None, ...]  # the values before the first step: the constants, in their slots
    results: tuple[int, ...]  # the slots of the roots

    def run(self, env: Mapping[str, Array], observe: Observer | None = None) -> list[Array]:
        """The float64 values of the roots, in order; ``observe`` sees every op application with its arguments."""
        with np.errstate(all="ignore"):  # non-finite values are judged by the caller, not warned about
            return self.evaluate(env, observe)

    def evaluate(self, env: Mapping[str, Array], observe: Observer | None = None) -> list[Array]:
        """``run`` in the caller's error state, for a caller that runs many programs under one."""
        values = self.values(Run(env, observe))
        return [values[r] for r in self.results]

    def values(self, run: Run) -> list:
        """Every slot's value (in the caller's error state)."""
        values = list(self.start)
        for step in self.steps:
            step(values, run)
        return values


def compile_program(roots: Sequence[Node], replace: Mapping[int, Op] | None = None) -> Program:
    """The program of ``roots``, with the ops of the nodes whose ids ``replace`` names swapped."""
    return _Builder(replace or {}, gradient_groups(roots)).program(tuple(roots))


class _Builder:
    def __init__(self, replace: Mapping[int, Op], groups: Mapping[Derivative, tuple[str, ...]]) -> None:
        self.replace = replace
        self.groups = groups
        self.slots: dict[Node, int] = {}
        self.steps: list[Step] = []
        self.start: list[Array | None] = []

    def program(self, roots: tuple[Node, ...]) -> Program:
        for root in roots:
            self._add(root)
        return Program(self.slots, tuple(self.steps), tuple(self.start), tuple(self.slots[r] for r in roots))

    def _add(self, node: Node) -> None:
        if node not in self.slots:
            for n in order(node):
                if n not in self.slots:
                    self._emit(n)

    def _emit(self, node: Node) -> None:
        step: Step | None
        if isinstance(node, Apply):
            op = self.replace.get(id(node), node.op)
            step = _apply(node, op, tuple(self.slots[a] for a in node.args), len(self.start))
        elif isinstance(node, Leaf):
            step = _leaf(node.name, len(self.start))
        elif isinstance(node, Constant):
            step = None
        else:
            step = self._derivative(node)
        if step is not None:
            self.steps.append(step)
        self.slots[node] = len(self.start)
        self.start.append(node.value if isinstance(node, Constant) else None)

    def _derivative(self, node: Derivative) -> Step:
        at = self.slots[node.at]
        if by_own_leaf(node):
            # The variable is already a leaf here, so the quantity's graph is this one's:
            # its values share these slots instead of being computed again.
            self._add(node.f)
            own = Differentiate(node, self.slots, self.replace, self.groups.get(node, ()))
            return _differentiate_here(own, at, len(self.start))
        inner = _Builder(self.replace, {}).program((node.f,))
        return _differentiate_inside(node.wrt, inner, Differentiate(node, inner.slots, self.replace), at,
                                     len(self.start))


def _leaf(name: str, slot: int) -> Step:
    def step(values: list, run: Run) -> None:
        try:
            value = run.env[name]
        except KeyError:
            raise EvaluationError(f"no value given for '{name}'") from None
        values[slot] = _asarray(value, dtype=_FLOAT)

    return step


# An op application is the step run most often, so the common arities read their operands
# without building a list, and the error handling is shared by all of them.


def _apply(node: Apply, op: Op, args: tuple[int, ...], slot: int) -> Step:
    forward, params = op.forward, node.params
    if len(args) == 1:
        (a,) = args

        def unary(values: list, run: Run) -> None:
            xs = (values[a],)
            if run.observe is not None:
                run.observe(node, xs)
            try:
                out = forward(xs[0], **params)
            except _ERRORS as exc:
                raise _failed(node, xs, exc) from None
            values[slot] = _asarray(out, dtype=_FLOAT)

        return unary
    if len(args) == 2:
        a, b = args

        def binary(values: list, run: Run) -> None:
            xs = (values[a], values[b])
            if run.observe is not None:
                run.observe(node, xs)
            try:
                out = forward(xs[0], xs[1], **params)
            except _ERRORS as exc:
                raise _failed(node, xs, exc) from None
            values[slot] = _asarray(out, dtype=_FLOAT)

        return binary

    def step(values: list, run: Run) -> None:
        xs = tuple([values[i] for i in args])
        if run.observe is not None:
            run.observe(node, xs)
        try:
            out = forward(*xs, **params)
        except _ERRORS as exc:
            raise _failed(node, xs, exc) from None
        values[slot] = _asarray(out, dtype=_FLOAT)

    return step


def _failed(node: Apply, xs: tuple[Array, ...], exc: Exception) -> EvaluationError:
    """The error of an op application, naming the expression and, for NumPy's errors, the shapes."""
    if isinstance(exc, EvaluationError):
        return EvaluationError(f"in '{node.text}': {exc}")
    shapes = ", ".join(str(x.shape) for x in xs)
    return EvaluationError(f"in '{node.text}': {node.op.name} of shapes {shapes}: {exc}")


def _differentiate_here(derivative: Differentiate, at: int, slot: int) -> Step:
    def step(values: list, run: Run) -> None:
        values[slot] = derivative(values, run.env, run.gradients, values[at])

    return step


def _differentiate_inside(wrt: str, inner: Program, derivative: Differentiate, at: int, slot: int) -> Step:
    def step(values: list, run: Run) -> None:
        inner_run = Run({**run.env, wrt: values[at]}, run.observe)
        values[slot] = derivative(inner.values(inner_run), inner_run.env, inner_run.gradients, values[at])

    return step
