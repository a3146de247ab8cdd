"""The class report of a batch: score distribution and per-question pass rates, as charts and a table."""

from __future__ import annotations

import statistics
from html import escape
from typing import Any, Mapping, Sequence

from grader.html_page import page, points
from grader.svg import bar_chart, histogram


def question_stats(reports: Sequence[Mapping[str, Any]]) -> list[tuple[str, int, int]]:
    """Per question id, in the set's order: (id, students with every output passed, students graded on it)."""
    passed: dict[str, int] = {}
    seen: dict[str, int] = {}
    for report in reports:
        outcome: dict[str, bool] = {}
        for q in report["questions"]:
            outcome[q["id"]] = outcome.get(q["id"], True) and q["status"] == "passed"
        for qid, ok in outcome.items():
            seen[qid] = seen.get(qid, 0) + 1
            passed[qid] = passed.get(qid, 0) + ok
    return [(qid, passed[qid], seen[qid]) for qid in seen]


def render_class_report(students: Sequence[tuple[str, Mapping[str, Any]]], title: str,
                        links: Mapping[str, str] | None = None) -> str:
    """The page for (student, report) pairs; ``links`` maps a student to their report's file name."""
    reports = [r for _, r in students]
    scores = [r["score"] for r in reports]
    top = max((r["max_score"] for r in reports), default=0.0)
    stats = question_stats(reports)
    body = [f"<h1>{escape(title)}: class report</h1>"]
    if not reports:
        return page(title, "\n".join(body + ["<p>No graded submissions.</p>"]))
    body.append(f'<p class="total">{len(reports)} students &middot; mean {statistics.mean(scores):.1f} &middot; '
                f"median {points(statistics.median(scores))} &middot; out of {points(top)}</p>")
    body += ["<h2>Score distribution</h2>", histogram(scores, top, "score distribution"),
             "<h2>Pass rate per question</h2>",
             bar_chart([(qid, ok / n) for qid, ok, n in stats], "pass rate per question"),
             "<h2>Students</h2>", _students(students, links or {})]
    return page(f"{title}: class report", "\n".join(body))


def _students(students: Sequence[tuple[str, Mapping[str, Any]]], links: Mapping[str, str]) -> str:
    rows = ["<table><tr><th>student</th><th>points</th><th>outputs passed</th><th>notes</th></tr>"]
    for student, r in sorted(students, key=lambda sr: (-sr[1]["score"], sr[0])):
        name = escape(student)
        if student in links:
            name = f'<a href="{escape(links[student])}">{name}</a>'
        passed = sum(q["status"] == "passed" for q in r["questions"])
        notes = "" if r.get("graded", True) else "could not be run"
        rows.append(f'<tr><td>{name}</td><td class="num">{points(r["score"])} / {points(r["max_score"])}</td>'
                    f'<td class="num">{passed} / {len(r["questions"])}</td><td>{escape(notes)}</td></tr>')
    return "\n".join(rows + ["</table>"])
