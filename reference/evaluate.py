"""NumPy evaluation of a resolved graph: forward values and reverse-mode derivatives.

``evaluate(node, env)`` computes a node's value from the values of its leaves.
A ``Derivative`` node is computed by reverse mode over its own sub-graph, using
each op's hand-written VJP (``reference.reverse``):

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

__all__ = ["evaluate", "evaluate_all", "jacobian_shape", "program"]

Array = np.ndarray


def evaluate(node: Node, env: Mapping[str, Array], observe: Observer | None = None,
             replace: Mapping[int, Op] | None = None) -> Array:
    """The float64 value of ``node`` given the values of its leaves (and ops replaced by node id)."""
    # a replacement is tried once per trial of a diagnosis: its program is not worth keeping
    prog = compile_program((node,), replace) if replace else program((node,))
    return prog.run(env, observe)[0]


def evaluate_all(nodes: Sequence[Node], env: Mapping[str, Array], observe: Observer | None = None) -> list[Array]:
    """The values of several nodes over the same leaves, computing what they share once."""
    return program(tuple(nodes)).run(env, observe)


@lru_cache(maxsize=4096)
def program(roots: tuple[Node, ...]) -> Program:
    """The compiled program of ``roots``, kept for the next evaluation of the same nodes."""
    return compile_program(roots)
