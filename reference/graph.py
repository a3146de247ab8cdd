"""Named nodes resolved into an evaluable graph, cut at a chosen set of leaves.

A spec names its nodes (``z1: W1 @ x + b1``). What a question expects is
resolved against the question's arguments: an argument is a leaf even when it is
an inner node of the network (a question that hands the student ``z1``
differentiates with ``z1`` as a leaf), and every other name is replaced by its
definition. A name that is neither a leaf nor a node cannot be computed from what
the student is given, and resolution says so.

Graph nodes compare by identity, so they can key the evaluator's memo; one
definition resolved under the same leaves is one node, shared wherever it is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

import numpy as np

from reference.errors import CycleError, ExpressionError
from reference.expr import Call, Const, Diff, Expr, Name
from reference.ops import OPS, Op


@dataclass(frozen=True, eq=False)
class Leaf:
    name: str


@dataclass(frozen=True, eq=False)
class Constant:
    value: np.ndarray


@dataclass(frozen=True, eq=False)
class Apply:
    op: Op
    args: tuple["Node", ...]
    params: Mapping[str, Any]
    text: str


@dataclass(frozen=True, eq=False)
class Derivative:
    """``kind`` of ``f`` with respect to the leaf ``wrt`` of f, taken at the value of ``at``."""

    kind: str
    f: "Node"
    wrt: str
    at: "Node"
    text: str


Node = Union[Leaf, Constant, Apply, Derivative]


@dataclass
class Graph:
    """The named nodes of one problem; ``variables`` are its inputs and dimensions."""

    nodes: Mapping[str, Expr]
    variables: frozenset[str]
    dims: frozenset[str] = frozenset()  # variables that are sizes: nothing is differentiated by them
    _cache: dict[tuple[str, frozenset[str]], Node] = field(default_factory=dict, repr=False)

    def resolve(self, expr: Expr, leaves: frozenset[str]) -> Node:
        """The graph of ``expr`` with ``leaves`` as its only free names."""
        try:
            return self._resolve(expr, frozenset(leaves), ())
        except RecursionError:
            raise ExpressionError("nodes are nested too deeply to resolve; shorten the chain of definitions") \
                from None

    def resolve_name(self, name: str, leaves: frozenset[str]) -> Node:
        return self.resolve(Name(name), leaves)

    def _resolve(self, expr: Expr, leaves: frozenset[str], stack: tuple[str, ...]) -> Node:
        if isinstance(expr, Const):
            return Constant(np.asarray(expr.value, dtype=np.float64))
        if isinstance(expr, Name):
            return self._name(expr, leaves, stack)
        if isinstance(expr, Call):
            args = tuple(self._resolve(a, leaves, stack) for a in expr.args)
            return Apply(OPS[expr.op], args, dict(expr.params), expr.text)
        return self._diff(expr, leaves, stack)

    def _name(self, expr: Name, leaves: frozenset[str], stack: tuple[str, ...]) -> Node:
        name = expr.id
        if name in leaves:
            return Leaf(name)
        if name in stack:
            cycle = " -> ".join(stack[stack.index(name):] + (name,))
            raise CycleError(f"nodes are defined in a cycle: {cycle}", frozenset(stack[stack.index(name):]), expr.col)
        key = (name, leaves)
        if key not in self._cache:
            if name in self.nodes:
                self._cache[key] = self._resolve(self.nodes[name], leaves, stack + (name,))
            elif name in self.variables:
                given = ", ".join(sorted(leaves)) or "nothing"
                raise ExpressionError(f"needs '{name}', which cannot be computed from what is given ({given})",
                                      expr.col)
            else:
                raise ExpressionError(f"unknown name '{name}': not an input, dimension or node", expr.col)
        return self._cache[key]

    def _diff(self, expr: Diff, leaves: frozenset[str], stack: tuple[str, ...]) -> Derivative:
        if expr.wrt not in self.nodes and expr.wrt not in self.variables:
            raise ExpressionError(f"{expr.kind} with respect to unknown name '{expr.wrt}'", expr.col)
        if expr.wrt in self.dims:
            raise ExpressionError(f"{expr.kind} with respect to '{expr.wrt}', a dimension; differentiate with "
                                  "respect to an input or a node", expr.col)
        at = self._name(Name(expr.wrt, expr.col), leaves, stack)
        f = self._resolve(expr.f, leaves | {expr.wrt}, stack)
        if not depends_on(f, expr.wrt):
            cut = f" once the arguments ({', '.join(sorted(leaves))}) are leaves" if leaves else ""
            raise ExpressionError(f"'{expr.text}' is zero everywhere: the quantity does not depend on "
                                  f"'{expr.wrt}'{cut}", expr.col)
        if any(isinstance(n, Derivative) and depends_on(n, expr.wrt) for n in walk(f)):
            raise ExpressionError(f"'{expr.text}' differentiates a derivative again; "
                                  "second derivatives are not supported", expr.col)
        return Derivative(expr.kind, f, expr.wrt, at, expr.text)


def children(node: Node) -> tuple[Node, ...]:
    """Every sub-graph of ``node``, a derivative's inner graph included."""
    if isinstance(node, Apply):
        return node.args
    if isinstance(node, Derivative):
        return (node.f, node.at)
    return ()


def operands(node: Node) -> tuple[Node, ...]:
    """The nodes whose values ``node``'s value is computed from in the same environment.

    A derivative's inner graph is left out: it is evaluated in an environment of
    its own, where its variable is a leaf.
    """
    if isinstance(node, Apply):
        return node.args
    if isinstance(node, Derivative):
        return (node.at,)
    return ()


def walk(root: Node, edges: Callable[[Node], tuple[Node, ...]] = children) -> list[Node]:
    """Every node reachable from ``root`` along ``edges``, each once, children before parents."""
    seen: set[int] = set()
    order: list[Node] = []
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in edges(node) if id(c) not in seen)
    return order


def depends_on(root: Node, name: str) -> bool:
    """Whether the leaf ``name`` is reachable from ``root``."""
    return any(isinstance(n, Leaf) and n.name == name for n in walk(root))


def leaf_names(root: Node) -> set[str]:
    return {n.name for n in walk(root) if isinstance(n, Leaf)}
