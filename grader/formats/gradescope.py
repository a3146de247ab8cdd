"""Gradescope's autograder ``results.json``, from a JSON report.

The format is Gradescope's "Autograder Specifications"
(https://gradescope-autograders.readthedocs.io/en/latest/specs/): a top-level
``score``, ``execution_time``, ``output``, ``visibility`` and
``stdout_visibility``, and one test per graded output with ``score``,
``max_score``, ``status`` (``passed``/``failed``), ``name``, ``number``,
``output``, ``visibility`` and ``tags``. The schema the tests validate against is
``tests/grader/schemas/gradescope_results.schema.json``.
"""

from __future__ import annotations

from typing import Any, Mapping

from grader.formats.feedback import label, question_feedback, summary

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")


def to_gradescope(doc: Mapping[str, Any], visibility: str = "visible") -> dict[str, Any]:
    """Gradescope's results.json for one submission; ``visibility`` applies to every test."""
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility={visibility!r}: use one of {', '.join(VISIBILITIES)}")
    return {
        "score": doc["score"],
        "execution_time": round(doc.get("elapsed_seconds", 0.0), 3),
        "output": summary(doc),
        "visibility": visibility,
        "stdout_visibility": "hidden",  # the grader's own log, not feedback
        "tests": [_test(q, number, visibility) for q, number in _numbered(doc["questions"])],
    }


def _numbered(questions: list[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], str]]:
    """``3.2`` is the second output of the third question, so Gradescope sorts them as the set does."""
    numbered, ids, count = [], [], 0
    for q in questions:
        if not ids or ids[-1] != q["id"]:
            ids.append(q["id"])
            count = 0
        count += 1
        numbered.append((q, f"{len(ids)}.{count}"))
    return numbered


def _test(q: Mapping[str, Any], number: str, visibility: str) -> dict[str, Any]:
    return {
        "score": q["score"],
        "max_score": q["max_score"],
        "status": "passed" if q["status"] == "passed" else "failed",
        "name": label(q),
        "number": number,
        "output": question_feedback(q),
        "visibility": visibility,
        "tags": [q["problem"], q["status"]],
    }
