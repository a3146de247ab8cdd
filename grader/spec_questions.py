"""Reading the questions of a spec: function, arguments, outputs and points, comparison, cases."""

from __future__ import annotations

import difflib
import keyword
from typing import Any, Mapping

from grader.spec import (
    COMPARE_MODES, PROJECT_DEFAULTS, CompareSpec, OutputSpec, QuestionSpec, Tolerance,
)
from grader.spec_checks import Problems, check_mapping, check_number, parse_expression

QUESTION_KEYS = ("id", "function", "args", "returns", "points", "trials", "rtol", "atol",
                 "compare", "cases", "kink_margin", "timeout", "doc")
COMPARE_KEYS = ("mode", "over", "strict")


def read_question(i: int, raw: Any, out: Problems, defaults: Mapping[str, Any], known: set[str],
                   inputs: set[str], fixable: set[str], dims: set[str]) -> QuestionSpec | None:
    out.question = f"#{i + 1}"
    if not isinstance(raw, dict):
        out.add("question", f"must be a mapping, not {raw!r}", "write function:, args:, returns:")
        return None
    function = raw.get("function")
    if not isinstance(function, str) or not function.isidentifier() or keyword.iskeyword(function):
        out.add("function", f"must be a Python function name, got {function!r}")
        return None
    out.question = str(raw.get("id", function))
    out.unknown_keys("", raw, QUESTION_KEYS)
    args = _read_args(raw.get("args"), out, known)
    outputs = _read_outputs(raw.get("returns"), raw.get("points", 1), out, function)
    settings = {k: raw.get(k, defaults[k]) for k in PROJECT_DEFAULTS}
    settings_ok = all([check_number(value, key, out, integer=key == "trials", positive=key not in ("atol", "rtol"))
                       for key, value in settings.items()])
    compare = _read_compare(raw.get("compare", {}), out, args, inputs)
    cases = _read_cases(raw.get("cases", []), out, fixable, dims)
    doc = raw.get("doc", "")
    if not isinstance(doc, str):
        out.add("doc", f"must be text, got {doc!r}")
        return None
    if args is None or outputs is None or compare is None or cases is None or not settings_ok:
        return None
    return QuestionSpec(out.question, function, args, outputs, isinstance(raw["returns"], (list, dict)),
                        int(settings["trials"]), Tolerance(float(settings["rtol"]), float(settings["atol"])),
                        compare, cases, float(settings["kink_margin"]), float(settings["timeout"]), doc.strip())


def check_unique_ids(questions: list[QuestionSpec], out: Problems) -> None:
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            out.question = q.id
            out.add("id", "is used by another question of this file", "give every question its own id")
        seen.add(q.id)
    out.question = None


def _read_args(raw: Any, out: Problems, known: set[str]) -> tuple[str, ...] | None:
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        out.add("args", f"must be a list of names, got {raw!r}", "write e.g. args: [x, W1, b1]")
        return None
    bad = [a for a in raw if a not in known]
    for a in bad:
        close = difflib.get_close_matches(a, sorted(known), n=1)
        out.add("args", f"'{a}' is not an input, dimension or node",
                f"did you mean '{close[0]}'?" if close else "declare it under inputs or nodes")
    if len(set(raw)) != len(raw):
        out.add("args", "names an argument twice")
        return None
    return None if bad else tuple(raw)


def _read_outputs(raw: Any, points: Any, out: Problems, function: str) -> tuple[OutputSpec, ...] | None:
    # Outputs are named after the function, never after their expression: students see
    # these names, and the expression is the answer.
    if raw is None:
        out.add("returns", "is missing", "every question needs returns: the expected expression(s)")
        return None
    if isinstance(raw, str):
        named = [(function, raw)]
    elif isinstance(raw, list) and raw and all(isinstance(r, str) for r in raw):
        named = [(f"{function}[{i}]", r) for i, r in enumerate(raw)]
    elif isinstance(raw, dict) and raw and all(isinstance(v, str) for v in raw.values()):
        named = [(str(k), v) for k, v in raw.items()]
    else:
        split = isinstance(raw, dict) and any(v is None for v in raw.values())
        fix = ("inside {...} a comma splits the mapping: quote expressions that contain commas, "
               "e.g. {dW: 'grad(loss, W)'}, or write one name: expression per line") if split \
            else "write e.g. returns: grad(loss, W1)"
        out.add("returns", f"must be an expression, a list of them, or a mapping name: expression; got {raw!r}",
                fix)
        return None
    pts = _read_points(points, len(named), out)
    exprs = [parse_expression(text, f"returns.{name}", out) for name, text in named]
    if pts is None or any(e is None for e in exprs):
        return None
    return tuple(OutputSpec(n, t, e, p) for (n, t), e, p in zip(named, exprs, pts))  # type: ignore[arg-type]


def _read_points(raw: Any, n: int, out: Problems) -> list[float] | None:
    values = raw if isinstance(raw, list) else [raw] * n
    if len(values) != n:
        out.add("points", f"lists {len(values)} values for {n} outputs", "give one number, or one per output")
        return None
    ok = all(check_number(v, "points", out, positive=False) for v in values)
    return [float(v) for v in values] if ok else None


def _read_compare(raw: Any, out: Problems, args: tuple[str, ...] | None, inputs: set[str]) -> CompareSpec | None:
    raw = check_mapping(raw, "compare", out, "write e.g. compare: {mode: positive_affine, over: [w, b]}")
    out.unknown_keys("compare.", raw, COMPARE_KEYS)
    mode, over, strict = raw.get("mode", "allclose"), raw.get("over", []), raw.get("strict", False)
    ok = True
    if mode not in COMPARE_MODES:
        out.add("compare.mode", f"unknown mode {mode!r}", f"use one of {', '.join(COMPARE_MODES)}")
        ok = False
    if not isinstance(strict, bool):
        out.add("compare.strict", f"must be true or false, got {strict!r}")
        ok = False
    if not isinstance(over, list) or any(a not in (args or ()) or a not in inputs for a in over):
        out.add("compare.over", f"must list inputs among the question's arguments, got {over!r}")
        ok = False
    elif mode != "positive_affine" and over:
        out.add("compare.over", f"only applies to mode positive_affine, not {mode}", "remove it or set the mode")
        ok = False
    elif mode == "positive_affine" and not over:
        out.add("compare.over", "positive_affine needs the parameters the loss is minimised over",
                "write e.g. over: [w, b]")
        ok = False
    elif mode == "positive_affine" and any(a not in inputs for a in args or ()):
        out.add("args", "with compare mode positive_affine every argument must be an input, so that an "
                        "example's data can be held fixed while the parameters are redrawn")
        ok = False
    return CompareSpec(mode, tuple(over), strict) if ok else None


def _read_cases(raw: Any, out: Problems, known: set[str], dims: set[str]) -> tuple[Mapping[str, Any], ...] | None:
    if not isinstance(raw, list) or not all(isinstance(c, dict) and c for c in raw):
        out.add("cases", f"must be a list of mappings name: value, got {raw!r}", "write e.g. cases: [{beta: 1000}]")
        return None
    bad = sorted({str(k) for c in raw for k in c if k not in known})
    for k in bad:
        out.add("cases", f"'{k}' is not an input or dimension")
    sizes = sorted({f"{k}: {v!r}" for c in raw for k, v in c.items() if k in dims
                    and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1)})
    for text in sizes:
        out.add("cases", f"'{text}': a dimension must be a whole number >= 1")
    return None if bad or sizes else tuple(raw)
