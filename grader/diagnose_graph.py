"""Diagnoses that re-evaluate the reference graph: what the student computed instead.

Each hypothesis here computes, for every failing trial, the value a student with
one specific mistake would have returned (a derivative factor dropped, a
neighbouring quantity, another Jacobian layout) and reports the mistake only when
the student's numbers equal that value within tolerance on every failing trial,
and the value differs from the expected one on at least one of them. Because the
alternatives come from the spec's graph and the op registry, they work for any
problem, not just Homework 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from grader.compare import within_tolerance
from grader.memo import Memo
from reference.errors import ToolkitError
from reference.evaluate import evaluate
from reference.expr import Diff, Expr, Name
from reference.graph import Derivative, Node, walk
from reference.mutations import Mutation, mutations, text

if TYPE_CHECKING:
    from grader.diagnose import Context, Failed
    from grader.sampling import CompiledQuestion, Trial

MIN_SPLIT = 3  # elements on each side of a "wrong only where ..." split, over all failing trials
# what a hypothesis's formula may raise on a trial: it then explains nothing there
NOT_EXPLAINED = (ToolkitError, ValueError, IndexError, TypeError, KeyError)


def leaf_env(t: "Trial") -> dict[str, np.ndarray]:
    """The values of a trial's leaves: its dimensions and the question's arguments."""
    return {**{d: np.asarray(float(v)) for d, v in t.dims.items()}, **t.args}


def aligned(got: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``got`` in ``shape`` when only axes of size 1 differ, else None."""
    same = [n for n in got.shape if n != 1] == [n for n in shape if n != 1]
    return got.reshape(shape) if same else None


def _explained(failures: Sequence["Failed"], ctx: "Context",
               value: Callable[["Trial"], np.ndarray]) -> bool:
    """Whether ``value`` (the answer under a hypothesis) is what the student returned on every failing trial."""
    differs = False
    for f in failures:  # the first trial that does not fit ends the test: most hypotheses fail at once
        try:
            alt = value(f.trial)
        except NOT_EXPLAINED:
            return False
        got = aligned(f.got, alt.shape)
        if got is None or not np.all(np.isfinite(alt)) or not within_tolerance(got, alt, ctx.tol):
            return False
        differs = differs or not within_tolerance(alt, ctx.expected(f), ctx.tol)
    return differs


# --- a mistake on the derivative path, or a related function --------------------------


def path_mistake(failures: Sequence["Failed"], ctx: "Context") -> str | None:
    """One derivative factor left out or applied twice, one path dropped, or a related function used."""
    if ctx.cq is None:
        return None
    node = ctx.cq.output_nodes[ctx.output]
    found = [m.description for m in mutations(node)
             if _explained(failures, ctx, lambda t, m=m: _mistaken(node, t, m))]
    return "equals the expected value computed with " + "; or with ".join(found) if found else None


# a mistake's value on a trial, or why it has none: the same for every student whose answer it is tried on
_MISTAKEN: Memo[np.ndarray | Exception] = Memo(32768)


def _mistaken(node: Node, t: "Trial", m: Mutation) -> np.ndarray:
    """``node`` on trial ``t`` with the mistake ``m``, worked out once per batch."""
    value = _MISTAKEN.get((node, t, m), None, lambda: _evaluate_mistaken(node, t, m))
    if isinstance(value, Exception):
        raise value.with_traceback(None)
    return value


def _evaluate_mistaken(node: Node, t: "Trial", m: Mutation) -> np.ndarray | Exception:
    try:
        return evaluate(node, leaf_env(t), replace=m.replace)
    except NOT_EXPLAINED as exc:
        return exc


# --- a neighbouring quantity of the same problem ------------------------------------------


def neighbouring_quantity(failures: Sequence["Failed"], ctx: "Context") -> str | None:
    """The value of another node, another question's output, or the derivative by/of a neighbouring name."""
    if ctx.cq is None:
        return None
    own = ctx.cq.question.outputs[ctx.output].text
    for label, node in _neighbours(ctx.cq, ctx.output):
        if _explained(failures, ctx, lambda t, node=node: evaluate(node, leaf_env(t))):
            return f"equals {label}, not '{own}': the value of a neighbouring quantity?"
    return None


def _neighbours(cq: "CompiledQuestion", output: int) -> Iterator[tuple[str, Node]]:
    """Quantities of the problem computable from the question's arguments, each once, by its text."""
    problem, own = cq.problem, cq.question.outputs[output]
    leaves = frozenset(cq.question.args) | {d.name for d in problem.dims}
    seen = {own.text} | set(cq.question.args)
    for key, label, expr in _candidate_exprs(cq, output):
        if key in seen:
            continue
        seen.add(key)
        try:
            yield label, problem.graph.resolve(expr, leaves)
        except ToolkitError:  # not computable from the arguments, or zero everywhere
            continue


def _candidate_exprs(cq: "CompiledQuestion", output: int) -> Iterator[tuple[str, str, Expr]]:
    """(the quantity's text, how the student is told of it, its expression), nearest kinds first."""
    problem, own = cq.problem, cq.question.outputs[output]
    if isinstance(own.expr, Diff):
        d, f_text = own.expr, _expr_text(own.expr.f)
        for name in [*problem.nodes, *problem.inputs]:
            if name != d.wrt:
                alt = f"{d.kind}({f_text}, {name})"
                yield alt, f"'{alt}' (by '{name}' instead of '{d.wrt}')", Diff(d.kind, d.f, name, alt)
        for name in problem.nodes:
            if name != f_text:
                alt = f"{d.kind}({name}, {d.wrt})"
                yield alt, f"'{alt}' (of '{name}' instead of '{f_text}')", Diff(d.kind, Name(name), d.wrt, alt)
    for q in problem.questions:
        for out in q.outputs:
            if q is not cq.question:
                where = q.function if len(q.outputs) == 1 else f"{q.function} -> {out.name}"
                yield out.text, f"'{out.text}' ({where})", out.expr
    for name in problem.nodes:
        yield name, f"'{name}'", Name(name)


def _expr_text(expr: Expr) -> str:
    return expr.id if isinstance(expr, Name) else getattr(expr, "text", "?")


# --- wrong only on part of the input ---------------------------------------------------------


def partial_input(failures: Sequence["Failed"], ctx: "Context") -> str | None:
    """The wrong elements are exactly those where an argument (or a node) is negative, or positive."""
    if ctx.cq is None:
        return None
    for name, node in _quantities(ctx.cq):
        for negative in (True, False):
            where = _split(failures, ctx, node, negative)
            if where:
                return f"wrong only {where.format(name=name)}; right elsewhere: check that case of your formula"
    return None


def _quantities(cq: "CompiledQuestion") -> Iterator[tuple[str, Node]]:
    """The question's arguments and the problem's nodes, as far as the arguments determine them."""
    dims = {d.name for d in cq.problem.dims}
    leaves = frozenset(cq.question.args) | dims
    for name in [*(a for a in cq.question.args if a not in dims), *cq.problem.nodes]:
        try:
            node = cq.problem.graph.resolve(Name(name), leaves)
        except ToolkitError:
            continue
        if not any(isinstance(n, Derivative) for n in walk(node)):
            yield name, node


def _split(failures: Sequence["Failed"], ctx: "Context", node: Node, negative: bool) -> str | None:
    """How the wrong elements follow the sign of ``node`` on every failing trial (a template), or None."""
    counts, labels, shapes = np.zeros(2, dtype=int), True, set()
    for f in failures:
        e = ctx.expected(f)
        got = aligned(f.got, e.shape)
        if got is None:
            return None
        v = evaluate(node, leaf_env(f.trial))
        labels = labels and bool(np.all(np.isin(v, (0.0, 1.0))))
        mask, shape = _mask(v < 0 if negative and not labels else v <= 0 if negative else v > 0, e.shape)
        if mask is None:
            return None
        bad = ~(np.isfinite(got) & (np.abs(got - e) <= ctx.tol.atol + ctx.tol.rtol * np.abs(e)))
        if not np.array_equal(bad, mask):
            return None
        # "right elsewhere" must mean something: elements that are right and not merely zero
        counts += (int(mask.sum()), int(np.sum(~mask & (np.abs(e) > ctx.tol.atol))))
        shapes.add(shape)
    if counts.min() < MIN_SPLIT or len(shapes) != 1:
        return None
    cond = ("{name} = 0" if negative else "{name} = 1") if labels else ("{name} < 0" if negative else "{name} > 0")
    where = shapes.pop()
    return {"same": f"where {cond}", "rows": f"in the rows i where {cond.replace('{name}', '{name}[i]')}",
            "columns": f"in the columns j where {cond.replace('{name}', '{name}[j]')}"}[where]


def _mask(condition: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray | None, str]:
    """``condition`` spread over an output of ``shape``: element by element, by rows or by columns."""
    if condition.shape == shape:
        return condition, "same"
    if condition.ndim == 1 and len(shape) == 2 and shape[0] != shape[1]:
        if condition.size == shape[0]:
            return np.broadcast_to(condition[:, None], shape), "rows"
        if condition.size == shape[1]:
            return np.broadcast_to(condition[None, :], shape), "columns"
    return None, ""


# --- a Jacobian in another layout -------------------------------------------------------------


def jacobian_layout(failures: Sequence["Failed"], ctx: "Context") -> str | None:
    """A Jacobian kept unflattened, in the input-first layout, or flattened column by column."""
    if ctx.cq is None:
        return None
    node = ctx.cq.output_nodes[ctx.output]
    if not isinstance(node, Derivative) or node.kind != "jacobian":
        return None
    first = _layouts(node, failures[0].trial, ctx.expected(failures[0]))
    for kind, (label, _) in first.items():
        if _explained(failures, ctx, lambda t, kind=kind: _layouts(node, t, t.expected[ctx.output])[kind][1]):
            return label
    return None


def _layouts(node: Derivative, t: "Trial", e: np.ndarray) -> dict[str, tuple[str, np.ndarray]]:
    """Other layouts of the expected Jacobian ``e`` on trial ``t``: kind -> (what the student did, value)."""
    env = leaf_env(t)
    x = evaluate(node.at, env)
    ys, xs = evaluate(node.f, {**env, node.wrt: x}).shape, x.shape
    full = e.reshape(ys + xs)  # J[i..., j...] = d y[i...] / d x[j...]
    flat = (int(np.prod(ys)), int(np.prod(xs)))
    found: dict[str, tuple[str, np.ndarray]] = {}
    if full.shape != e.shape:
        found["unflattened"] = (f"the Jacobian as an array of shape {full.shape} (y.shape + x.shape); this "
                                f"question asks for the {flat} matrix, y and x flattened row by row: use "
                                f".reshape{flat}", full)
    if full.ndim > 2:
        found["input-first"] = (f"the Jacobian in the input-first layout, shape {xs + ys}; this question puts "
                                f"the output's index first: a {flat} matrix with J[i, j] = d y_i / d x_j",
                                np.moveaxis(full, tuple(range(len(ys))), tuple(range(len(xs), full.ndim))))
    for which, flip_y, flip_x in (("y", True, False), ("x", False, True), ("y and x", True, True)):
        if (flip_y and len(ys) < 2) or (flip_x and len(xs) < 2):
            continue
        y_axes = tuple(reversed(range(len(ys)))) if flip_y else tuple(range(len(ys)))
        x_axes = tuple(len(ys) + a for a in (reversed(range(len(xs))) if flip_x else range(len(xs))))
        found[f"column-major {which}"] = (
            f"the Jacobian with {which} flattened column by column (vec, as many texts write it); this question "
            "flattens row by row, as NumPy's reshape does", full.transpose(y_axes + x_axes).reshape(e.shape))
    return found


def problem_constants(cq: "CompiledQuestion | None", output: int) -> list[tuple[float, str]]:
    """The numbers written in an output's expression (5 of 5 * relu(z1), the 2 of ** 2), with where."""
    if cq is None:
        return []
    found: dict[tuple[float, str], None] = {}
    for node in walk(cq.output_nodes[output]):
        for arg in getattr(node, "args", ()):
            value = getattr(arg, "value", None)
            if value is not None and np.size(value) == 1 and float(value) not in (0.0, 1.0, -1.0):
                found[(float(value), getattr(node, "text", text(node)))] = None
    return list(found)
