"""One submission's HTML report, for the student: total, why each miss is a miss, plots, every question.

Built from the JSON report (``grader.report.to_json``, with ``"plots"`` from
``grader.curves`` when there are any): the total, then for each output that did
not pass its message, diagnoses, tolerance report, smallest failing example
(``failure.example``, when the grader gives one) and replay command, then the
plots of element-wise derivatives against the reference, then the table of every
graded output. Every string is escaped: it may come from a student's file.
"""

from __future__ import annotations

from html import escape
from typing import Any, Mapping, Sequence

from grader.formats.feedback import compact, label
from grader.html_page import page, points
from grader.svg import Series, line_plot

REFERENCE_COLOR = "#1f77b4"
STUDENT_COLOR = "#e8590c"


def render_html(doc: Mapping[str, Any], student: str | None = None) -> str:
    """The complete page for one report; ``student`` names it (default: the submission's path)."""
    who = student or doc["submission"]
    body = [f"<h1>{escape(who)}: {escape(doc['problem_set'])}</h1>",
            f'<p class="meta">{escape(doc["submission"])} &middot; seed {doc["seed"]} &middot; '
            f'{len(doc["questions"])} graded outputs</p>',
            f'<p class="total">Total: {points(doc["score"])} / {points(doc["max_score"])} points</p>']
    body += [f'<p class="note">Note: {escape(n)}</p>' for n in doc.get("notes") or []]
    details = [_detail(q) for q in doc["questions"] if q["status"] != "passed" or q.get("warnings")]
    if details:
        body += ["<h2>What went wrong</h2>", *details]
    plots = doc.get("plots") or []
    if plots:
        body += ["<h2>Your functions against the reference</h2>",
                 "<p>Each element-wise derivative evaluated on inputs from -5 to 5: the reference "
                 "(solid) and your function (dashed). Where they differ, your answer is wrong.</p>",
                 '<div class="plots">', *(_plot(p) for p in plots), "</div>"]
    body += ["<h2>Every question</h2>", _table(doc["questions"])]
    return page(f"{who}: {doc['score']:g}/{doc['max_score']:g}", "\n".join(body))


def _table(questions: Sequence[Mapping[str, Any]]) -> str:
    rows = ["<table><tr><th>question</th><th>function / output</th><th>status</th><th>points</th>"
            "<th>trials passed</th><th>message</th></tr>"]
    for q in questions:
        target = escape(q["function"]) + ("" if q["output"] == q["function"] else f" &rarr; {escape(q['output'])}")
        rows.append(f"<tr><td>{escape(q['id'])}</td><td><code>{target}</code></td>"
                    f'<td class="{escape(q["status"])}">{escape(q["status"])}</td>'
                    f'<td class="num">{points(q["score"])} / {points(q["max_score"])}</td>'
                    f'<td class="num">{q["trials_passed"]} / {q["trials"]}</td>'
                    f"<td>{escape(_first_line(q.get('message') or ''))}</td></tr>")
    return "\n".join(rows + ["</table>"])


def _detail(q: Mapping[str, Any]) -> str:
    parts = [f'<div class="detail"><h3>{escape(label(q))} <span class="{escape(q["status"])}">'
             f'[{escape(q["status"])}]</span></h3>']
    if q.get("message"):
        parts.append(f"<pre>{escape(q['message'])}</pre>")
    parts += [f"<p><b>Diagnosis:</b> {escape(d)}</p>" for d in q.get("diagnosis") or []]
    f = q.get("failure")
    if f:
        parts.append(_tolerance(q, f))
        dims = ", ".join(f"{escape(str(k))}={escape(str(v))}" for k, v in (f.get("dims") or {}).items()) or "none"
        case = f.get("case")
        fixed = f"the fixed case {escape(', '.join(f'{k}={v}' for k, v in case.items()))}; " if case else ""
        parts.append(f"<p><b>Failing trial</b> {f['trial']} ({fixed}dimensions {dims})</p>")
        parts.append(_example(f.get("example")))
        if f.get("replay"):
            parts.append(f"<p>Replay it: <code>{escape(f['replay'])}</code></p>")
    parts += [f'<p class="note">Warning: {escape(w)}</p>' for w in q.get("warnings") or []]
    return "\n".join(parts + ["</div>"])


def _tolerance(q: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    if q.get("max_abs_error") is None:
        return ""
    tol = q.get("tolerance") or {}
    share = f.get("share_outside_tolerance")
    where = f" at index {escape(str(f['worst_index']))}" if f.get("worst_index") else ""
    outside = f"; {100 * share:.0f}% of the elements outside tolerance" if share is not None else ""
    return (f"<p><b>Tolerance report:</b> worst absolute error {q['max_abs_error']:.3g}, worst relative error "
            f"{(q.get('max_rel_error') or 0):.3g}{where}{outside}; allowed: {tol.get('atol', 0):g} + "
            f"{tol.get('rtol', 0):g} &times; |expected|</p>")


def _example(example: Mapping[str, Any] | None) -> str:
    """The smallest failing example, when the grader gives one: inputs, expected and got."""
    if not example:
        return ""
    rows = [f"<tr><td><code>{escape(str(name))}</code></td><td><code>{escape(compact(value))}</code></td></tr>"
            for name, value in (example.get("inputs") or {}).items()]
    rows.append(f"<tr><td>expected</td><td><code>{escape(compact(example.get('expected')))}</code></td></tr>")
    rows.append(f"<tr><td>you returned</td><td><code>{escape(compact(example.get('got')))}</code></td></tr>")
    dims = ", ".join(f"{k}={v}" for k, v in (example.get("dims") or {}).items())
    head = f"<p><b>Smallest failing example</b>{escape(f' ({dims})' if dims else '')}:</p>"
    return head + '<table class="example">' + "".join(rows) + "</table>"


def _plot(p: Mapping[str, Any]) -> str:
    series = [Series("reference", REFERENCE_COLOR, p["expected"])]
    if p.get("got") is not None:
        series.append(Series(f"your {p['function']}", STUDENT_COLOR, p["got"], dashed=True))
    chart = line_plot(p["x"], series, f"{p['question']}: {p['function']}")
    why = f'<p class="note">Your function could not be drawn: {escape(p["message"])}</p>' if p.get("message") else ""
    return f'<div class="plot"><b>{escape(p["question"])}</b><br>{chart}{why}</div>'


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""
