"""The gradebook as CSV: one row per student, one column per question (its points), and the total."""

from __future__ import annotations

import csv
import io
from typing import Any, Mapping, Sequence


def to_csv(reports: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """CSV of (student, report) pairs; questions in the problem set's order, points summed over outputs.

    A question missing from a student's report (graded with ``--only``, or an
    older version of the set) is an empty cell, not a zero.
    """
    columns: dict[str, None] = {}
    rows = []
    for student, report in reports:
        points: dict[str, float] = {}
        for q in report["questions"]:
            columns.setdefault(q["id"])
            points[q["id"]] = points.get(q["id"], 0.0) + q["score"]
        rows.append((student, points, report["score"]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["student", *columns, "total"])
    for student, points, total in rows:
        writer.writerow([_cell(student), *(_number(points[c]) if c in points else "" for c in columns), _number(total)])
    return out.getvalue()


def _cell(text: str) -> str:
    # a name from a file like "=cmd.py" must not become a spreadsheet formula
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _number(x: float) -> str:
    return f"{x:g}"
