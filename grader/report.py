"""Grade reports: the terminal text and the JSON document, both built from ``GradeResult``.

The JSON shape is documented in the README ("JSON report"); keep the two in step.
Non-finite numbers become ``null`` in JSON (JSON has no NaN or Infinity); the
message says what they were.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from grader.grading import GradeResult, OutputResult, TrialFailure
from grader.shrink import Example
from grader.textutil import short, table

REPORT_VERSION = 1


def replay_command(result: GradeResult, out: OutputResult, bundled: Path) -> str:
    """The command that grades exactly the failing trial of ``out`` again."""
    if out.failure is None:
        return ""
    parts = ["grade", str(result.submission)]
    if result.problems_path.resolve() != bundled.resolve():
        parts += ["--problems", str(result.problems_path)]
    parts += ["--seed", str(result.seed), "--only", out.function]
    parts += ["--trials", str(result.trials)] if result.trials is not None else []
    parts += ["--trial", str(out.failure.trial)]
    return shlex.join(parts)


def _points(x: float) -> str:
    return f"{x:g}"


def _error(x: float | None) -> str:
    return "-" if x is None else f"{x:.1e}"


def render_text(result: GradeResult, bundled: Path) -> str:
    lines = [f"Grading {result.submission} against problem set '{result.problem_set}' (seed {result.seed})"]
    lines.append("isolation: " + (", ".join(result.layers) if result.layers else "none (the file was not run)"))
    lines += [f"note: {n}" for n in result.notes]
    rows = [[o.question, _label(o), o.status,
             f"{_points(o.score)}/{_points(o.max_score)}", f"{o.trials_passed}/{o.trials}",
             _error(o.max_abs_error), short(o.message, 60)] for o in result.outputs]
    lines += ["", table(["question", "function / output", "status", "points", "trials", "worst abs err",
                         "message"], rows)]
    lines += ["", f"Total: {_points(result.score)} / {_points(result.max_score)} points"]
    details = [_details(result, o, bundled) for o in result.outputs if o.status != "passed" or o.warnings]
    if details:
        lines += ["", "Details", "-------"] + [d for block in details for d in block]
    return "\n".join(lines)


def _label(o: OutputResult) -> str:
    return f"{o.function} -> {o.output}" if o.of_tuple else o.function


def _details(result: GradeResult, o: OutputResult, bundled: Path) -> list[str]:
    lines = [f"{o.question}: {_label(o)}  [{o.status}]"]
    if o.message:
        lines.append(f"  {o.message}")
    f = o.failure
    if f is not None and (o.diagnosis or f.comparison is not None):
        lines += _tolerance_block(result, o, f)
    if f is not None and f.example is not None:
        lines += _example_block(o.function, f.example)
    if f is not None:
        lines.append(f"  replay: {replay_command(result, o, bundled)}")
    lines += [f"  warning: {w}" for w in o.warnings]
    return lines


def _tolerance_block(result: GradeResult, o: OutputResult, f: TrialFailure) -> list[str]:
    """Where and by how much the failing trial missed, and why, in one block."""
    dims = ", ".join(f"{k}={v}" for k, v in f.dims.items()) or "no dimensions"
    case = f"the fixed case {', '.join(f'{k}={v}' for k, v in f.case.items())}; " if f.case else ""
    lines = [f"  tolerance report (failing trial {f.trial}: {case}{dims}; seed {result.seed}):"]
    c = f.comparison
    if c is not None and c.n_bad and math.isfinite(c.max_abs):
        where = f" at index {list(c.worst_index)}" if c.worst_index else ""
        lines.append(f"    worst abs error {c.max_abs:.3g}, worst rel error {c.max_rel:.3g}{where}")
        lines.append(f"    {100 * c.share_bad:.0f}% of {c.size} element(s) outside atol {o.tolerance.atol:g} + "
                     f"rtol {o.tolerance.rtol:g} x |expected|")
    lines += [f"    diagnosis: {d}" for d in o.diagnosis]
    return lines


def _example_block(function: str, e: Example) -> list[str]:
    """The simplest failing call, in values a student can check by hand."""
    how = [f"from trial {e.trial}"] + (["dimensions made smallest"] if e.shrunk else []) + (
        [f"inputs rounded to {e.rounded} decimal{'s' if e.rounded != 1 else ''}"] if e.rounded else [])
    dims = ", ".join(f"{k}={v}" for k, v in e.dims.items())
    lines = [f"  smallest failing example ({'; '.join(how)}{'; ' + dims if dims else ''}):"]
    names = [*e.inputs, "expected", "got"]
    width = max(len(n) for n in names)
    values = [*e.inputs.values(), e.expected, e.got]
    for name, value in zip(names, values):
        shown = array_text(value).replace("\n", "\n" + " " * (width + 7))
        lines.append(f"    {name.ljust(width)} = {shown}")
    return lines


def array_text(value: np.ndarray) -> str:
    """An array as a student would type it: few digits, no float noise, long arrays elided."""
    value = np.asarray(value, dtype=np.float64)
    if value.ndim == 0:
        return _number(float(value))
    return np.array2string(value, separator=", ", threshold=36, edgeitems=3, max_line_width=90,
                           formatter={"float_kind": _number})


def _number(x: float) -> str:
    # 1 rather than "1.", 0.1 rather than 0.10000000000000001, and six significant digits at most
    return np.format_float_positional(x, precision=6, unique=True, fractional=False, trim="-")


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def to_json(result: GradeResult, bundled: Path) -> dict[str, Any]:
    return {
        "report_version": REPORT_VERSION,
        "submission": str(result.submission),
        "problem_set": result.problem_set,
        "seed": result.seed,
        "score": result.score,
        "max_score": result.max_score,
        "graded": result.graded,
        "isolation": list(result.layers),
        "notes": list(result.notes),
        "elapsed_seconds": round(result.elapsed, 4),
        "questions": [_output_json(result, o, bundled) for o in result.outputs],
    }


def _output_json(result: GradeResult, o: OutputResult, bundled: Path) -> dict[str, Any]:
    f = o.failure
    return {
        "id": o.question, "problem": o.problem, "function": o.function, "output": o.output, "status": o.status,
        "score": o.score, "max_score": o.max_score, "trials": o.trials, "trials_passed": o.trials_passed,
        "message": o.message, "diagnosis": list(o.diagnosis), "warnings": list(o.warnings),
        "max_abs_error": _finite(o.max_abs_error), "max_rel_error": _finite(o.max_rel_error),
        "tolerance": {"rtol": o.tolerance.rtol, "atol": o.tolerance.atol},
        "failure": None if f is None else {
            "trial": f.trial, "dims": f.dims, "case": f.case, "message": f.message,
            "worst_index": list(f.comparison.worst_index) if f.comparison and f.comparison.worst_index else None,
            "share_outside_tolerance": f.comparison.share_bad if f.comparison else None,
            "example": _example_json(f.example),
            "replay": replay_command(result, o, bundled)},
    }


def _example_json(e: Example | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {"trial": e.trial, "dims": dict(e.dims), "rounded_to_decimals": e.rounded, "shrunk": e.shrunk,
            "inputs": {k: _numbers(v) for k, v in e.inputs.items()},
            "expected": _numbers(e.expected), "got": _numbers(e.got)}


def _numbers(a: np.ndarray) -> Any:
    """Nested lists of floats; NaN and infinities become null (JSON has neither)."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return _finite(float(a))
    return [_numbers(x) for x in a]


def render_json(results: Sequence[GradeResult], bundled: Path) -> str:
    """One JSON object for one submission, a list for several."""
    docs = [to_json(r, bundled) for r in results]
    return json.dumps(docs[0] if len(docs) == 1 else docs, indent=2)
