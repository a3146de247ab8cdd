"""The summary a batch prints at the end: counts, the score distribution, what needs attention."""

from __future__ import annotations

import statistics

from grader.batch import BatchResult
from grader.progress import duration


def render_summary(result: BatchResult, gradebook: str, resume: str = "") -> str:
    """Plain text; ``resume`` is the command that continues an interrupted batch."""
    records = result.records
    reused = len(records) - len(result.graded)
    rate = f", {len(result.graded) / result.elapsed:.1f}/s" if result.graded and result.elapsed > 0 else ""
    lines = [f"{len(records)} submission(s) in the gradebook {gradebook}: {len(result.graded)} graded now, "
             f"{reused} unchanged (not graded again); {duration(result.elapsed)} with {result.jobs} job(s){rate}"]
    if records:
        scores = [r.score for r in records]
        top = max(r.max_score for r in records)
        lines.append(f"scores out of {top:g}: mean {statistics.mean(scores):.1f}, median "
                     f"{statistics.median(scores):g}, min {min(scores):g}, max {max(scores):g}")
        unread = [r.student for r in records if not r.report.get("graded", True)]
        if unread:
            lines.append(f"could not be run (scored 0, see their reports): {', '.join(unread)}")
    for f in result.failures:
        lines.append(f"not graded: {f.student} ({f.path}): {f.message}; it is retried on the next run")
    lines += [f"skipped: {p}" for p in result.skipped]
    if resume:
        lines.append(f"interrupted: every result above is saved; to resume, run again: {resume}")
    return "\n".join(lines)
