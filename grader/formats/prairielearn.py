"""PrairieLearn's external-grader ``results.json``, from a JSON report.

The format is PrairieLearn's "External grading" results
(https://prairielearn.readthedocs.io/en/latest/externalGrading/): ``gradable``,
``score`` as a fraction in [0, 1], ``message``, ``output`` and ``tests``, each
with ``name``, ``description``, ``points``, ``max_points``, ``output`` and
``message``. The grader writes it to ``/grade/results/results.json``. The schema
the tests validate against is ``tests/grader/schemas/prairielearn_results.schema.json``.
"""

from __future__ import annotations

from typing import Any, Mapping

from grader.formats.feedback import label, question_feedback, summary


def to_prairielearn(doc: Mapping[str, Any]) -> dict[str, Any]:
    """PrairieLearn's results for one submission.

    ``gradable`` is false when nothing could run (a file that does not compile):
    PrairieLearn then does not count the submission as an attempt.
    """
    max_score = doc["max_score"]
    return {
        "gradable": bool(doc.get("graded", True)),
        "score": doc["score"] / max_score if max_score else 0.0,
        "message": summary(doc),
        "output": "\n".join(doc.get("notes") or []),
        "tests": [_test(q) for q in doc["questions"]],
    }


def _test(q: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": label(q),
        "description": f"{q['status']}: {q['trials_passed']}/{q['trials']} trials passed",
        "points": q["score"],
        "max_points": q["max_score"],
        "output": question_feedback(q),
        "message": q.get("message") or "",
    }
