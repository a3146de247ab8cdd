"""An independent evaluation of resolved graphs with torch autograd, for the self-check.

``evaluate_torch`` has the semantics of ``reference.evaluate.evaluate`` (see its
docstring) but takes every forward value from ``Op.torch`` and every derivative
from torch autograd instead of the hand-written VJPs, so the two can be compared.
``check_op_torch`` does the same for one op on one set of arguments.

This module imports torch; only the self-check imports it, never the grading path.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch.func import jacrev

from reference.errors import EvaluationError
from reference.evaluate import jacobian_shape
from reference.gradcheck import Mismatch, check_vjp_against, compare_arrays, describe
from reference.graph import Apply, Constant, Derivative, Leaf, Node, operands, walk
from reference.ops import Op

Array = np.ndarray
Tensor = torch.Tensor
_TORCH_ERRORS = (RuntimeError, ValueError, TypeError, IndexError)
DIAGONAL_TOL = 1e-12


def evaluate_torch(node: Node, env: Mapping[str, Array]) -> Array:
    """The float64 value of ``node`` given the values of its leaves, computed with torch."""
    tensors = {name: _tensor(value) for name, value in env.items()}
    return _TorchEvaluator(tensors).value(node).detach().cpu().numpy().astype(np.float64)


def _tensor(value: Any) -> Tensor:
    return torch.as_tensor(np.asarray(value, dtype=np.float64))


class _TorchEvaluator:
    """One environment's values; ``known`` pre-fills the memo (derivatives already computed)."""

    def __init__(self, env: Mapping[str, Tensor], known: Mapping[int, Tensor] | None = None) -> None:
        self.env = env
        self.memo: dict[int, Tensor] = dict(known or {})

    def value(self, node: Node) -> Tensor:
        for n in walk(node, operands):  # children first, as in the reference
            if id(n) not in self.memo:
                self.memo[id(n)] = self._compute(n)
        return self.memo[id(node)]

    def _compute(self, node: Node) -> Tensor:
        if isinstance(node, Leaf):
            if node.name not in self.env:
                raise EvaluationError(f"no value given for '{node.name}'")
            return self.env[node.name]
        if isinstance(node, Constant):
            return _tensor(node.value)
        if isinstance(node, Apply):
            return self._apply(node)
        return self._derivative(node)

    def _apply(self, node: Apply) -> Tensor:
        args = tuple(self.memo[id(a)] for a in node.args)
        try:
            return node.op.torch(torch, *args, **node.params)
        except EvaluationError as exc:
            raise EvaluationError(f"in '{node.text}': {exc}") from None
        except _TORCH_ERRORS as exc:
            shapes = ", ".join(str(tuple(a.shape)) for a in args)
            raise EvaluationError(f"in '{node.text}': {node.op.name} of shapes {shapes}: {exc}") from None

    def _derivative(self, node: Derivative) -> Tensor:
        at = self.memo[id(node.at)].detach()
        if node.kind == "grad":
            return _grad(node, self.env, at)
        inner = _TorchEvaluator({**self.env, node.wrt: at})
        f = inner.value(node.f)
        _check_derivative_shape(node, f, at)
        # Derivatives nested in f do not depend on the variable (resolution rejects second
        # derivatives), and torch refuses autograd.grad inside a transform: reuse their values.
        known = {id(n): inner.memo[id(n)] for n in walk(node.f, operands) if isinstance(n, Derivative)}
        jac = jacrev(lambda x: _TorchEvaluator({**self.env, node.wrt: x}, known).value(node.f))(at)
        if node.kind == "derivative":
            return _diagonal(node, jac, at)
        return jac.reshape(jacobian_shape(tuple(f.shape), tuple(at.shape)))


def _grad(node: Derivative, env: Mapping[str, Tensor], at: Tensor) -> Tensor:
    x = at.clone().requires_grad_(True)
    with torch.enable_grad():
        f = _TorchEvaluator({**env, node.wrt: x}).value(node.f)
    if tuple(f.shape) != ():
        raise EvaluationError(f"'{node.text}': grad needs a scalar, but the quantity has shape {tuple(f.shape)}; "
                              "use sum(...) for a total, or jacobian / derivative")
    if not f.requires_grad:  # f does not depend on the variable at all
        return torch.zeros_like(at)
    (g,) = torch.autograd.grad(f.reshape(()), x, allow_unused=True)
    return torch.zeros_like(at) if g is None else g.detach()


def _check_derivative_shape(node: Derivative, f: Tensor, at: Tensor) -> None:
    if node.kind == "derivative" and f.shape != at.shape:
        raise EvaluationError(f"'{node.text}': an element-wise derivative needs the quantity {tuple(f.shape)} "
                              f"and the variable {tuple(at.shape)} to have the same shape; use jacobian")


def _diagonal(node: Derivative, jac: Tensor, at: Tensor) -> Tensor:
    """The diagonal of a square Jacobian, once its off-diagonal part is (near) zero."""
    square = jac.reshape(at.numel(), at.numel())
    diag = torch.diagonal(square)
    off = (square - torch.diag(diag)).abs()
    scale = max(1.0, float(square.abs().nan_to_num(nan=0.0, posinf=0.0).max())) if at.numel() else 1.0
    # NaN off the diagonal (0 * a NaN derivative) says nothing about structure; NaN > tol is False.
    if bool((off > DIAGONAL_TOL * scale).any()):
        raise EvaluationError(f"'{node.text}' is not element-wise: derivative() needs each output to depend "
                              "only on the same element of the input; use jacobian")
    return diag.reshape(at.shape)


# --- one op against torch ---------------------------------------------------------


def check_op_torch(
    op: Op, args: tuple[Array, ...], params: Mapping[str, Any], rng: np.random.Generator,
    rtol: float = 1e-9, atol: float = 1e-12,
) -> list[Mismatch]:
    """Compare the NumPy forward and ``op.vjp`` with torch's forward and autograd."""
    forward = check_forward_torch(op, args, params, rtol, atol)
    return ([] if forward is None else [forward]) + check_vjp_torch(op, args, params, rng, rtol, atol)


def check_forward_torch(
    op: Op, args: tuple[Array, ...], params: Mapping[str, Any], rtol: float = 1e-9, atol: float = 1e-12
) -> Mismatch | None:
    """Compare ``op.forward`` with ``op.torch`` on the same arguments."""
    expected = op.torch(torch, *(_tensor(a) for a in args), **params).detach().numpy()
    return compare_arrays(describe(op, "forward", args, None, params), op.forward(*args, **params),
                          expected, rtol, atol)


def check_vjp_torch(
    op: Op, args: tuple[Array, ...], params: Mapping[str, Any], rng: np.random.Generator,
    rtol: float = 1e-9, atol: float = 1e-12,
) -> list[Mismatch]:
    """Compare ``op.vjp`` with ``torch.autograd.grad`` for each differentiable argument."""
    def by_torch(a: tuple[Array, ...], i: int, cotangent: Array) -> Array:
        return _torch_vjp(op.torch, a, params, i, cotangent)

    return check_vjp_against(op, args, params, rng, by_torch, " against torch", rtol, atol)


def _torch_vjp(
    fn: Callable[..., Any], args: tuple[Array, ...], params: Mapping[str, Any], index: int, cotangent: Array
) -> Array:
    tensors = [_tensor(a) for a in args]
    tensors[index].requires_grad_(True)
    out = fn(torch, *tensors, **params)
    (g,) = torch.autograd.grad(out, tensors[index], grad_outputs=_tensor(cotangent), allow_unused=True)
    return np.zeros(np.shape(args[index])) if g is None else g.detach().numpy()
