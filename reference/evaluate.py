"""NumPy evaluation of a resolved graph: forward values and reverse-mode derivatives.

``evaluate(node, env)`` computes a node's value from the values of its leaves.
A ``Derivative`` node (``grad``, ``jacobian`` or ``derivative``, with the shapes
``reference.reverse`` gives) is computed by reverse mode over its own sub-graph,
using each op's hand-written VJP.

An ``observe`` callback sees every op application with its argument values;
sampling uses it to measure how close a draw came to an op's kink. ``replace``
swaps the op of chosen nodes (by ``id``) for another: the diagnoses re-evaluate a
reference with one derivative factor dropped or one function confused, to test
a hypothesis about a student's mistake against the numbers (on every failing
trial, so a ``replace`` mapping is compiled once and must not change afterwards).

A graph is compiled once into a program (``reference.program``) and the program
is kept for the next environment: nodes are immutable and hash by identity.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np

from reference.graph import Node
from reference.ops import Op
from reference.program import Observer, Program, compile_program
from reference.reverse import jacobian_shape

__all__ = ["evaluate", "evaluate_all", "jacobian_shape"]  # jacobian_shape: torch_eval shares the shape rule

Array = np.ndarray


def evaluate(node: Node, env: Mapping[str, Array], observe: Observer | None = None,
             replace: Mapping[int, Op] | None = None) -> Array:
    """The float64 value of ``node`` given the values of its leaves (and ops replaced by node id)."""
    prog = _replaced(_Replacement(node, replace)) if replace else _program((node,))
    return prog.run(env, observe)[0]


def evaluate_all(nodes: Sequence[Node], env: Mapping[str, Array], observe: Observer | None = None) -> list[Array]:
    """The values of several nodes over the same leaves, computing what they share once."""
    return _program(tuple(nodes)).run(env, observe)


@lru_cache(maxsize=4096)
def _program(roots: tuple[Node, ...]) -> Program:
    """The compiled program of ``roots``, kept for the next evaluation of the same nodes."""
    return compile_program(roots)


class _Replacement:
    """A node with ops replaced, as a cache key: a diagnosis tries one replacement on every failing trial.

    A mapping of ids does not hash, so the key is the very mapping object (never changed
    once made); the key holds it, and so its ops, so an id is never reused while cached.
    """

    __slots__ = ("node", "replace")

    def __init__(self, node: Node, replace: Mapping[int, Op]) -> None:
        self.node, self.replace = node, replace

    def __hash__(self) -> int:
        return hash((self.node, id(self.replace)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Replacement) and other.node is self.node and other.replace is self.replace


@lru_cache(maxsize=1024)
def _replaced(key: _Replacement) -> Program:
    return compile_program((key.node,), key.replace)
