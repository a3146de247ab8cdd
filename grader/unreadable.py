"""The report of a submission that could not be read at all (not UTF-8, not a notebook, too large).

``grade()`` raises ``SubmissionError`` for such a file; a batch records it
instead, as a zero on every question with the reason, so that the student is in
the gradebook and the export like everyone else. The document has the shape of
``grader.report.to_json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from grader.report import REPORT_VERSION
from grader.selection import selected_questions
from grader.spec import OutputSpec, ProblemSet, QuestionSpec


class _Options(Protocol):
    seed: int
    only: str | None


def unreadable_report(problem_set: ProblemSet, path: Path, options: _Options, message: str) -> dict[str, Any]:
    questions = [_question(p.name, q, o, message)
                 for p, q in selected_questions(problem_set, options.only) for o in q.outputs]
    return {
        "report_version": REPORT_VERSION, "submission": str(path), "problem_set": problem_set.name,
        "seed": options.seed, "score": 0.0, "max_score": sum(q["max_score"] for q in questions),
        "graded": False, "isolation": [], "notes": [message], "elapsed_seconds": 0.0, "questions": questions,
    }


def _question(problem: str, q: QuestionSpec, out: OutputSpec, message: str) -> dict[str, Any]:
    return {
        "id": q.id, "problem": problem, "function": q.function, "output": out.name, "status": "error",
        "score": 0.0, "max_score": out.points, "trials": 0, "trials_passed": 0,
        "message": f"the submission could not be read: {message}", "diagnosis": [], "warnings": [],
        "max_abs_error": None, "max_rel_error": None,
        "tolerance": {"rtol": q.tolerance.rtol, "atol": q.tolerance.atol}, "failure": None,
    }
