"""Small checks shared by the spec readers: each records a located problem and says whether all was well."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Mapping

from grader.spec import SpecProblem
from reference.errors import ExpressionError
from reference.expr import Expr, parse


@dataclass
class Problems:
    """Collects the problems of one file; ``question`` is set while a question is read."""

    file: str
    found: list[SpecProblem] = field(default_factory=list)
    question: str | None = None

    def add(self, where: str, message: str, fix: str = "") -> None:
        self.found.append(SpecProblem(self.file, self.question, where, message, fix))

    def unknown_keys(self, where: str, mapping: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
        for key in mapping:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                fix = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
                self.add(f"{where}{key}" if where else str(key), "unknown field", fix)


def check_number(value: Any, where: str, out: Problems, positive: bool = True, integer: bool = False) -> bool:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (not integer or float(value).is_integer()) and (value > 0 if positive else value >= 0)
    if not ok:
        kind = "whole number" if integer else "number"
        out.add(where, f"must be a {'positive' if positive else 'non-negative'} {kind}, got {value!r}")
    return ok


def check_mapping(value: Any, where: str, out: Problems, fix: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        out.add(where, f"must be a mapping, not a {type(value).__name__}", fix)
        return {}
    return value


def parse_expression(text: Any, where: str, out: Problems) -> Expr | None:
    try:
        return parse(text if isinstance(text, str) else str(text))
    except ExpressionError as exc:
        at = f" (at column {exc.col + 1})" if exc.col is not None else ""
        out.add(where, f"'{text}': {exc}{at}", "see docs/specs.md, 'Expressions'")
        return None
