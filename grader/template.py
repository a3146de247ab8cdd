"""The blank submission a student starts from, generated from the problem set.

Every question becomes a function with its signature, a docstring (what it
computes, the shapes of its arguments and outputs, its points) and ``raise
NotImplementedError``. Shapes are found by drawing one trial with every dimension
set to a distinct prime and naming each axis by the dimension of that size, so
the template states ``(h, n)`` and can never drift from the specs. The expected
expressions are never written out: they are the answers.
"""

from __future__ import annotations

import textwrap
from itertools import combinations
from typing import Mapping

import numpy as np

from grader.sampling import compile_question, draw_trial
from grader.spec import ProblemSet, ProblemSpec, QuestionSpec
from reference.errors import ToolkitError

# Distinct primes, largest first, so that bounds such as k: [1, n] hold, and none
# equal to the small literal sizes of specs (the 2 of a 2x2 rotation).
SYMBOLIC_SIZES = (41, 37, 31, 29, 23, 19, 17, 13)


def render_template(problem_set: ProblemSet, command: str) -> str:
    """The whole template module for ``problem_set``; ``command`` is how it was generated."""
    head = [
        f'"""{problem_set.title}: the functions to write.',
        "",
        f"Generated from the problem set '{problem_set.name}' by `{command}`. Keep the names and",
        "the arguments. Arguments are NumPy float64 arrays (dimensions are int, scalars float);",
        "return NumPy arrays of the shapes given, a tuple where several outputs are asked for.",
        "Check your work with: grade <this file>",
        '"""',
        "",
        "import numpy as np",
    ]
    blocks = ["\n".join(head)]
    for problem in problem_set.problems:
        blocks.append(_problem_header(problem))
        blocks += [_function(problem, q, _shapes(problem, q)) for q in problem.questions]
    return "\n\n\n".join(blocks) + "\n"


def _problem_header(problem: ProblemSpec) -> str:
    ranges = ", ".join(f"{d.name} = {d.low}" if d.low == d.high else f"{d.name} in {d.low}..{d.high}"
                       for d in problem.dims)
    line = f"# --- {problem.title} ---"
    return line + (f"\n# Sizes vary between trials: {ranges}." if ranges else "")


def _function(problem: ProblemSpec, q: QuestionSpec, shapes: tuple[Mapping[str, str], list[str]]) -> str:
    arg_shapes, out_shapes = shapes
    doc = [f"{q.id}.", *(textwrap.wrap(q.doc, width=80) if q.doc else []), "", "Arguments:"]
    doc += [f"    {a}: {arg_shapes[a]}" for a in q.args]
    if q.returns_tuple:
        doc += ["", f"Returns a tuple ({', '.join(o.name for o in q.outputs)}):"]
        doc += [f"    {o.name}: {s}" for o, s in zip(q.outputs, out_shapes)]
    else:
        doc += ["", f"Returns: {out_shapes[0]}"]
    if q.compare.mode == "positive_affine":
        doc += ["", *textwrap.wrap("Graded up to a positive factor and a term that does not depend on "
                                   f"{', '.join(q.compare.over)}.", width=80)]
    doc += ["", f"Points: {q.points:g}"]
    body = "\n".join(f"    {line}".rstrip() for line in doc)
    return f"def {q.function}({', '.join(q.args)}):\n    \"\"\"{body.strip()}\n    \"\"\"\n    raise NotImplementedError"


def _shapes(problem: ProblemSpec, q: QuestionSpec) -> tuple[dict[str, str], list[str]]:
    sizes = {d.name: s for d, s in zip(problem.dims, SYMBOLIC_SIZES)}
    names = {s: d for d, s in sizes.items()}
    dims = set(sizes)
    try:
        trial = draw_trial(compile_question(problem, q), 0, 1, sizes)
    except ToolkitError:  # a spec whose distributions cannot take these sizes: say less, not wrong
        return {a: "int" if a in dims else "array" for a in q.args}, ["array"] * len(q.outputs)
    args = {a: "int" if a in dims else _shape_text(trial.args[a], names, scalar="float") for a in q.args}
    return args, [_shape_text(e, names, scalar="scalar (a float)") for e in trial.expected]


def _shape_text(value: np.ndarray, names: Mapping[int, str], scalar: str) -> str:
    if value.ndim == 0:
        return scalar
    axes = [_axis(n, names) for n in value.shape]
    return f"({axes[0]},)" if len(axes) == 1 else f"({', '.join(axes)})"


def _axis(n: int, names: Mapping[int, str]) -> str:
    if n in names:
        return names[n]
    for a, b in combinations(sorted(names), 2):  # a flattened Jacobian: (y.size, x.size)
        if a * b == n:
            return f"{names[a]}*{names[b]}"
    return str(n)
