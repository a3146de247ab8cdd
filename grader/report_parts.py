"""A JSON report (``grader.report.to_json``) cut into one part per problem, and put back together.

The gradebook caches grades per problem (one YAML problem, or one variant of
one), so that fixing one spec re-grades that problem only. A part is the JSON
report of the submission graded on that problem alone; assembling the parts of
every problem of the set gives the same document a full grade would, in the
problem set's order.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

Doc = dict[str, Any]


def split_by_problem(doc: Mapping[str, Any], problems: Sequence[str]) -> dict[str, Doc]:
    """One part per name in ``problems``: the document with only that problem's questions.

    A problem with no questions in ``doc`` (excluded by ``--only``) still gets a
    part, so that it counts as graded.
    """
    # the grade ran once for all of them: its time is shared out, so that parts add up
    elapsed = round(doc.get("elapsed_seconds", 0.0) / max(1, len(problems)), 4)
    return {name: {**doc, "elapsed_seconds": elapsed,
                   "questions": [q for q in doc["questions"] if q["problem"] == name],
                   "plots": [p for p in doc.get("plots", []) if p["problem"] == name]}
            for name in problems}


def assemble(parts: Sequence[Mapping[str, Any]], submission: str) -> Doc:
    """The report of one submission from its parts, in the given order, for the file at ``submission``."""
    if not parts:
        raise ValueError("assemble() needs at least one part")
    questions = [q for part in parts for q in part["questions"]]
    first = parts[0]
    return {
        **first,
        "submission": submission,
        "score": sum(q["score"] for q in questions),
        "max_score": sum(q["max_score"] for q in questions),
        "graded": all(p.get("graded", True) for p in parts),
        "isolation": max((p.get("isolation", []) for p in parts), key=len),
        # notes are about the whole file (a load error, a skipped magic): each part has them
        "notes": list(dict.fromkeys(n for p in parts for n in p.get("notes", []))),
        "elapsed_seconds": round(sum(p.get("elapsed_seconds", 0.0) for p in parts), 4),
        "questions": questions,
        "plots": [plot for p in parts for plot in p.get("plots", [])],
    }
