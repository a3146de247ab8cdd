"""Plain-text feedback on one question of a JSON report, shared by the platform formats."""

from __future__ import annotations

from typing import Any, Mapping

MAX_ITEMS = 12  # entries of an array shown in an example; the rest is elided


def label(q: Mapping[str, Any]) -> str:
    """``1.2(c) gradients: reg_grads -> dW1`` (the output is named when the function has several)."""
    target = q["function"] if q["output"] in ("", q["function"], None) else f"{q['function']} -> {q['output']}"
    return f"{q['id']}: {target}"


def question_feedback(q: Mapping[str, Any]) -> str:
    """The message, diagnoses, tolerance, smallest failing example and warnings of one question."""
    lines = [q["message"]] if q.get("message") else []
    lines += [f"Diagnosis: {d}" for d in q.get("diagnosis") or []]
    f = q.get("failure")
    if f:
        tol = q.get("tolerance") or {}
        if q.get("max_abs_error") is not None:
            lines.append(f"Worst error: {q['max_abs_error']:.3g} absolute, {q.get('max_rel_error') or 0:.3g} "
                         f"relative (allowed: {tol.get('atol', 0):g} + {tol.get('rtol', 0):g} x |expected|)")
        dims = ", ".join(f"{k}={v}" for k, v in (f.get("dims") or {}).items()) or "none"
        lines.append(f"Failing trial {f['trial']} (dimensions {dims})")
        lines += example_lines(f.get("example"))
        if f.get("replay"):
            lines.append(f"Replay: {f['replay']}")
    lines += [f"Warning: {w}" for w in q.get("warnings") or []]
    if q["status"] == "passed":
        lines.insert(0, f"Passed {q['trials_passed']}/{q['trials']} trials.")
    return "\n".join(lines)


def example_lines(example: Mapping[str, Any] | None) -> list[str]:
    """The smallest failing example (inputs, expected, got), compactly; nothing when there is none."""
    if not example:
        return []
    lines = ["Smallest failing example:"]
    lines += [f"  {name} = {compact(value)}" for name, value in (example.get("inputs") or {}).items()]
    lines += [f"  expected: {compact(example.get('expected'))}", f"  got:      {compact(example.get('got'))}"]
    return lines


def compact(value: Any) -> str:
    """A number or nested list in a few characters: 4 significant digits, long arrays elided."""
    if isinstance(value, bool) or value is None:
        return "none" if value is None else str(value)
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    if isinstance(value, list):
        items = [compact(v) for v in value[:MAX_ITEMS]]
        more = [f"... ({len(value) - MAX_ITEMS} more)"] if len(value) > MAX_ITEMS else []
        return "[" + ", ".join(items + more) + "]"
    return str(value)


def summary(doc: Mapping[str, Any]) -> str:
    """The header of a report: the score, the seed, and notes on the whole file."""
    lines = [f"Score: {doc['score']:g} / {doc['max_score']:g} (problem set {doc['problem_set']}, seed {doc['seed']})"]
    lines += [f"Note: {n}" for n in doc.get("notes") or []]
    return "\n".join(lines)
