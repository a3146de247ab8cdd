"""Plausible mistakes, as changes to a reference graph: what a student may have computed instead.

A mutation swaps the op of one node for a variant: its derivative factor left out
of the chain rule or applied twice, one path into a node dropped, or a related
function in its place (the exact GELU for the tanh one). Re-evaluating a graph
with a mutation (``evaluate(..., replace=m.replace)``) gives the value a student
with that mistake would return, so a diagnosis can test the hypothesis against
the student's numbers. Mutations are derived from the graph and the op registry
alone, so they work for any spec.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Callable, Mapping

import numpy as np

from reference.graph import Apply, Constant, Derivative, Leaf, Node, operands, walk
from reference.ops import Op, unbroadcast

Array = np.ndarray


@dataclass(frozen=True)
class Mutation:
    """One mistake: ``replace`` maps a node's id to the op a student used instead."""

    description: str  # completes "equals the expected value computed with ..."
    replace: Mapping[int, Op]


@lru_cache(maxsize=1024)
def mutations(root: Node) -> tuple[Mutation, ...]:
    """Every single-node mistake on the derivative paths of ``root``, then every related function.

    Kept per node: the same mutations, and so the programs compiled for them (``evaluate``
    caches those by mutation), serve every submission of a batch that makes a mistake there.
    """
    found: list[Mutation] = []
    for d in (n for n in walk(root) if isinstance(n, Derivative)):
        live = _live(d)
        for node in walk(d.f, operands):
            if isinstance(node, Apply) and id(node) in live:
                found += _path_mistakes(node, [k for k, a in enumerate(node.args) if id(a) in live])
    for node in walk(root):
        if isinstance(node, Apply):
            found += [Mutation(f"{r.name} for '{node.text}'", {id(node): replace(node.op, forward=r.forward,
                                                                                  vjp=r.vjp)})
                      for r in node.op.related]
    return tuple(found)


def text(node: Node) -> str:
    """How a node reads in a spec: a name, a number or the expression's text."""
    if isinstance(node, Leaf):
        return node.name
    if isinstance(node, Constant):
        return f"{float(node.value):g}" if node.value.size == 1 else "a constant"
    return node.text


def _live(d: Derivative) -> set[int]:
    """Ids of the nodes of ``d.f`` that depend on the variable ``d`` differentiates by."""
    live: set[int] = set()
    for n in walk(d.f, operands):
        if (isinstance(n, Leaf) and n.name == d.wrt) or any(id(c) in live for c in operands(n)):
            live.add(id(n))
    return live


def _path_mistakes(node: Apply, live_args: list[int]) -> list[Mutation]:
    op, key = node.op, id(node)
    if op.chain_factor:
        return [Mutation(f"the derivative of {op.name} in '{node.text}' left out (a factor {op.name}'(...) "
                         "missing on the chain-rule path?)", {key: replace(op, vjp=_pass_through)}),
                Mutation(f"the derivative of {op.name} in '{node.text}' applied twice",
                         {key: replace(op, vjp=_twice(op.vjp))})]
    if op.name in ("mul", "div") and live_args in ([0], [1]) and not (op.name == "div" and live_args == [1]):
        return _factor_mistakes(node, live_args[0])
    if len(live_args) >= 2:
        return [Mutation(f"the path into '{text(node.args[k])}' (argument {k + 1} of '{node.text}') left out: "
                         "when a quantity reaches the result along several paths, add the derivative of every "
                         "path", {key: replace(op, vjp=_drop(op.vjp, k))}) for k in live_args]
    return []


def _factor_mistakes(node: Apply, live: int) -> list[Mutation]:
    """``a * b`` or ``a / b`` with one side on the path: the other side's factor missing or doubled."""
    other = node.args[1 - live]
    divide = node.op.name == "div"
    shown = f"division by {text(other)}" if divide else f"factor {text(other)}"

    def skip(g: Array, o: Array, *args: Array) -> tuple[Array | None, ...]:
        return _only(live, unbroadcast(g, args[live].shape))

    def twice(g: Array, o: Array, *args: Array) -> tuple[Array | None, ...]:
        factor = 1.0 / args[1] if divide else args[1 - live]
        return _only(live, unbroadcast(g * factor * factor, args[live].shape))

    return [Mutation(f"the {shown} of '{node.text}' left out of the derivative",
                     {id(node): replace(node.op, vjp=skip)}),
            Mutation(f"the {shown} of '{node.text}' applied twice in the derivative",
                     {id(node): replace(node.op, vjp=twice)})]


def _only(index: int, ct: Array) -> tuple[Array | None, ...]:
    return (ct, None) if index == 0 else (None, ct)


def _pass_through(g: Array, o: Array, a: Array, **params: Any) -> tuple[Array]:
    return (g,)


def _twice(vjp: Callable[..., tuple[Array | None, ...]]) -> Callable[..., tuple[Array | None, ...]]:
    def apply(g: Array, o: Array, a: Array, **params: Any) -> tuple[Array | None, ...]:
        once = vjp(g, o, a, **params)[0]
        return vjp(once, o, a, **params)

    return apply


def _drop(vjp: Callable[..., tuple[Array | None, ...]], k: int) -> Callable[..., tuple[Array | None, ...]]:
    def apply(g: Array, o: Array, *args: Array, **params: Any) -> tuple[Array | None, ...]:
        return tuple(None if i == k else ct for i, ct in enumerate(vjp(g, o, *args, **params)))

    return apply
