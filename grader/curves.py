"""Plot data for element-wise derivative questions: the student's function against the reference.

A question qualifies when it takes one argument and asks for
``derivative(f, arg)`` of that argument (section 1.5(c): ``d_relu(x)``): such a
function maps each entry of its input to one number, so it can be drawn as a
curve over a range of inputs. No spec key is needed (docs/specs.md says so).

The reference values come from the spec's expression, evaluated here; the
student's come from one call in a sandboxed worker, like any graded call. The
result is plain JSON (``"plots"`` in the report), for the HTML report.
"""

from __future__ import annotations

import math
from typing import Any, Collection, Sequence

import numpy as np

from grader.memo import Memo
from grader.sampling import compile_question, largest_dims
from grader.sandbox import Batch, Limits, Sandbox
from grader.spec import ProblemSpec, QuestionSpec
from grader.submission import read_submission
from reference.errors import ToolkitError
from reference.evaluate import evaluate
from reference.expr import Diff

# 200 points, so that 0 (where ReLU-like derivatives jump) is never on the grid
GRID = np.linspace(-5.0, 5.0, 200)


def plottable(q: QuestionSpec) -> bool:
    """True for a one-argument question that asks for the element-wise derivative w.r.t. that argument."""
    if len(q.args) != 1 or len(q.outputs) != 1:
        return False
    expr = q.outputs[0].expr
    return isinstance(expr, Diff) and expr.kind == "derivative" and expr.wrt == q.args[0]


def plot_questions(questions: Sequence[tuple[ProblemSpec, QuestionSpec]]
                   ) -> list[tuple[ProblemSpec, QuestionSpec, np.ndarray, np.ndarray]]:
    """The plottable questions among ``questions``, with their input grid and the reference values on it."""
    found = []
    for p, q in questions:
        if not plottable(q):
            continue
        x = _grid(p, q.args[0])
        expected = _reference(p, q, x)
        if expected is not None:
            found.append((p, q, x, expected))
    return found


def plots(path: Any, questions: Sequence[tuple[ProblemSpec, QuestionSpec]]) -> list[dict[str, Any]]:
    """For each plottable question, the reference and the submission at ``path`` over ``GRID``."""
    todo = plot_questions(questions)
    if not todo:
        return []
    sub = read_submission(path)
    if sub.syntax_error is not None:
        return [_plot(p, q, expected, None, "the file does not compile") for p, q, _, expected in todo]
    with Sandbox(sub.source, sub.name, Limits(), sub.locate) as sandbox:  # plots only: no points at stake
        return plots_in(sandbox, sandbox.load().functions, todo)


def plots_in(sandbox: Sandbox, functions: Collection[str],
             todo: Sequence[tuple[ProblemSpec, QuestionSpec, np.ndarray, np.ndarray]]) -> list[dict[str, Any]]:
    """The curves of ``todo`` (from ``plot_questions``) from a sandbox that has loaded the submission.

    A batch calls this in the sandbox it graded with, so plots cost calls, not another worker.
    """
    # one request for every curve: the worker answers them back to back
    calls = sandbox.run([Batch.of(q.function, [[(q.args[0], x)]], None, q.timeout)
                         for _, q, x, _ in todo if q.function in functions])
    result = []
    for p, q, x, expected in todo:
        if q.function not in functions:
            result.append(_plot(p, q, expected, None, f"{q.function} is not defined"))
            continue
        (call,) = next(calls)
        got = call.outputs[0] if call.status == "ok" else None
        if got is not None and got.shape != x.shape:
            got, message = None, f"returned shape {got.shape} for an input of shape {x.shape}"
        else:
            message = call.message if call.status != "ok" else ""
        result.append(_plot(p, q, expected, got, message))
    return result


def _grid(p: ProblemSpec, arg: str) -> np.ndarray:
    # the input's own rank, with the points along the last axis (the functions must take any shape)
    rank = len(p.inputs[arg].shape) if arg in p.inputs else 1
    return GRID.reshape((1,) * (rank - 1) + (GRID.size,))


def _reference(p: ProblemSpec, q: QuestionSpec, x: np.ndarray) -> np.ndarray | None:
    try:
        node = compile_question(p, q).output_nodes[0]
        env = {d: np.asarray(float(v)) for d, v in largest_dims(p).items()}
        value = evaluate(node, {**env, q.args[0]: x})
    except ToolkitError:
        return None
    return value if value.shape == x.shape else None  # not element-wise after all: no curve


def _plot(p: ProblemSpec, q: QuestionSpec, expected: np.ndarray, got: np.ndarray | None, message: str
          ) -> dict[str, Any]:
    return {"problem": p.name, "question": q.id, "function": q.function, "x": _reference_numbers(GRID),
            "expected": _reference_numbers(expected), "got": None if got is None else _numbers(got),
            "message": message}


_REFERENCE_NUMBERS: Memo[tuple[float | None, ...]] = Memo(256)


def _reference_numbers(values: np.ndarray) -> list[float | None]:
    # the grid and the reference curves are the same in every report of a batch: rounded once
    return list(_REFERENCE_NUMBERS.get((values,), None, lambda: tuple(_numbers(values))))


def _numbers(values: np.ndarray) -> list[float | None]:
    # JSON has no NaN or Infinity: a non-finite value is a gap in the curve
    return [round(float(v), 6) if math.isfinite(v) else None for v in values.reshape(-1)]
