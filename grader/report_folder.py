"""A folder of HTML reports from the gradebook: one page per student, and ``index.html`` for the class."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from grader.class_report import render_class_report
from grader.gradebook import StudentRecord
from grader.html_report import render_html

CLASS_PAGE = "index.html"


def report_name(student: str) -> str:
    """The file of a student's report: the name, with anything unusual in a file name replaced."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", student).lstrip(".") + ".html"


def write_reports(records: Sequence[StudentRecord], folder: Path) -> list[Path]:
    """Write every student's page and the class page; return the paths written (the class page last)."""
    folder.mkdir(parents=True, exist_ok=True)
    written, links = [], {}
    for r in records:
        path = folder / report_name(r.student)
        path.write_text(render_html(r.report, r.student), encoding="utf-8")
        written.append(path)
        links[r.student] = path.name
    title = records[0].problem_set if records else "class"
    index = folder / CLASS_PAGE
    index.write_text(render_class_report([(r.student, r.report) for r in records], title, links), encoding="utf-8")
    return written + [index]
