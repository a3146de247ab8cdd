"""The expression language of problem specs: Python syntax, parsed, never evaluated.

``parse("W1 @ x + b1")`` walks the tree of the standard ``ast`` module and
builds a small immutable expression tree from the few constructs a spec needs:
names, numbers, the arithmetic operators, unary minus, ``.T``, calls of
registry ops, ``grad`` / ``jacobian`` / ``derivative``, and nested lists as
matrix literals (``[[cos(t), -sin(t)], [sin(t), cos(t)]]``). Anything else is
rejected with a message that says what is allowed instead.
"""

from __future__ import annotations

import ast
import difflib
import math
from dataclasses import dataclass
from typing import Any, Union

from reference.errors import ExpressionError
from reference.ops import OPS, SYNTAX_OPS, callable_names

DIFF_KINDS = ("grad", "jacobian", "derivative")
CONSTANTS = {"pi": math.pi}

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow", ast.MatMult: "matmul"}


@dataclass(frozen=True)
class Name:
    id: str
    col: int = 0


@dataclass(frozen=True)
class Const:
    value: float


@dataclass(frozen=True)
class Call:
    """An op applied to sub-expressions; ``params`` are its constant keyword arguments."""

    op: str
    args: tuple["Expr", ...]
    params: tuple[tuple[str, Any], ...]
    text: str
    col: int = 0


@dataclass(frozen=True)
class Diff:
    """``grad(f, x)``, ``jacobian(f, x)`` or ``derivative(f, x)``."""

    kind: str
    f: "Expr"
    wrt: str
    text: str
    col: int = 0


Expr = Union[Name, Const, Call, Diff]


def parse(text: str) -> Expr:
    """Parse one expression; raise ``ExpressionError`` naming the column at fault."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("an expression must be a non-empty string")
    try:
        tree = ast.parse(text.strip(), mode="eval")
        return _convert(tree.body)
    except SyntaxError as exc:
        col = (exc.offset or 1) - 1
        raise ExpressionError(f"not a valid expression: {exc.msg}", col) from None
    except (RecursionError, MemoryError):
        raise ExpressionError("the expression is nested too deeply; split it into named nodes") from None


def free_names(expr: Expr) -> set[str]:
    """Every name the expression refers to (including the variables of derivatives)."""
    if isinstance(expr, Name):
        return {expr.id}
    if isinstance(expr, Call):
        return set().union(*(free_names(a) for a in expr.args)) if expr.args else set()
    if isinstance(expr, Diff):
        return free_names(expr.f) | {expr.wrt}
    return set()


def _convert(node: ast.AST) -> Expr:
    col = getattr(node, "col_offset", 0)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExpressionError(f"only numbers may appear as constants, not {node.value!r}", col)
        return Const(float(node.value))
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return Const(CONSTANTS[node.id])
        return Name(node.id, col)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _call(_BINOPS[type(node.op)], [_convert(node.left), _convert(node.right)], (), node)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _convert(node.operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(operand, Const):
            return Const(-operand.value)
        return _call("neg", [operand], (), node)
    if isinstance(node, ast.Attribute):
        if node.attr != "T":
            raise ExpressionError(f"'.{node.attr}' is not supported; the only attribute is '.T' (transpose)", col)
        return _call("transpose", [_convert(node.value)], (), node)
    if isinstance(node, ast.Call):
        return _convert_call(node)
    if isinstance(node, ast.List):
        return _convert_literal(node)
    raise ExpressionError(f"{type(node).__name__} syntax ('{ast.unparse(node)}') is not allowed in an expression", col)


def _call(op: str, args: list[Expr], params: tuple[tuple[str, Any], ...], node: ast.AST) -> Call:
    return Call(op, tuple(args), params, ast.unparse(node), getattr(node, "col_offset", 0))


def _convert_call(node: ast.Call) -> Expr:
    col = node.col_offset
    if not isinstance(node.func, ast.Name):
        raise ExpressionError(f"only named functions can be called, not '{ast.unparse(node.func)}'", col)
    fname = node.func.id
    if fname in DIFF_KINDS:
        return _convert_diff(fname, node)
    if fname not in OPS or fname in SYNTAX_OPS:
        hint = difflib.get_close_matches(fname, callable_names() + list(DIFF_KINDS), n=1)
        more = f"; did you mean '{hint[0]}'?" if hint else f"; known functions: {', '.join(callable_names())}"
        raise ExpressionError(f"unknown function '{fname}'{more}", col)
    op = OPS[fname]
    n_args = op.n_args or 0
    if len(node.args) < n_args:
        raise ExpressionError(f"{fname} takes {n_args} argument(s), got {len(node.args)}", col)
    args = [_convert(a) for a in node.args[:n_args]]
    params = _params(fname, list(op.params), node.args[n_args:], node.keywords, col)
    return _call(fname, args, params, node)


def _params(
    fname: str, names: list[str], extra: list[ast.expr], keywords: list[ast.keyword], col: int
) -> tuple[tuple[str, Any], ...]:
    if len(extra) > len(names):
        raise ExpressionError(f"{fname} takes too many arguments; its options are {names or 'none'}", col)
    given = dict(zip(names, (_constant(fname, e) for e in extra)))
    for kw in keywords:
        if kw.arg not in names:
            raise ExpressionError(f"{fname} has no option '{kw.arg}'; its options are {names or 'none'}", col)
        if kw.arg in given:
            raise ExpressionError(f"{fname} got option '{kw.arg}' twice", col)
        given[kw.arg] = _constant(fname, kw.value)
    return tuple(sorted(given.items()))


def _constant(fname: str, node: ast.expr) -> Any:
    """An option's value: a literal number or None (an axis, a slope), never an expression."""
    try:
        value = ast.literal_eval(node)
    except ValueError:
        value = node
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    raise ExpressionError(f"options of {fname} must be literal numbers, not '{ast.unparse(node)}'", node.col_offset)


def _convert_diff(kind: str, node: ast.Call) -> Diff:
    col = node.col_offset
    if len(node.args) != 2 or node.keywords:
        raise ExpressionError(f"{kind} takes exactly two arguments: {kind}(quantity, variable)", col)
    wrt = node.args[1]
    if not isinstance(wrt, ast.Name) or wrt.id in CONSTANTS:
        raise ExpressionError(f"the second argument of {kind} must be the name of an input or node, "
                              f"not '{ast.unparse(wrt)}'", wrt.col_offset)
    return Diff(kind, _convert(node.args[0]), wrt.id, ast.unparse(node), col)


def _convert_literal(node: ast.List) -> Call:
    rows = node.elts
    if not rows:
        raise ExpressionError("an empty list is not a matrix", node.col_offset)
    if all(isinstance(r, ast.List) for r in rows):
        widths = {len(r.elts) for r in rows}  # type: ignore[attr-defined]
        if len(widths) != 1 or 0 in widths:
            raise ExpressionError("every row of a matrix literal must have the same, non-zero length",
                                  node.col_offset)
        entries = [e for r in rows for e in r.elts]  # type: ignore[attr-defined]
        shape: tuple[int, ...] = (len(rows), widths.pop())
    elif any(isinstance(r, ast.List) for r in rows):
        raise ExpressionError("a matrix literal mixes rows and scalars", node.col_offset)
    else:
        entries, shape = list(rows), (len(rows),)
    return _call("stack", [_convert(e) for e in entries], (("shape", shape),), node)
