"""The batch's progress line."""

from __future__ import annotations

import io

from grader.progress import ProgressBar, duration, render_line


def test_line_shows_count_rate_and_time_left() -> None:
    assert render_line("grading", 10, 40, 2.0) == "grading [######..................] 10/40  2.0/s  15s left"
    assert render_line("grading", 40, 40, 2.0).endswith("40/40  2.0/s  done")
    assert "time left unknown" in render_line("grading", 0, 40, None)
    assert (duration(9), duration(125), duration(3780)) == ("9s", "2m 05s", "1h 03m")


def test_rate_ignores_work_that_was_already_done() -> None:
    times = iter([0.0, 2.0])
    out = io.StringIO()
    bar = ProgressBar(out, interactive=True, clock=lambda: next(times))
    bar(30, 40)  # 30 came from the gradebook at once
    bar(34, 40)
    bar.close()
    assert "34/40  2.0/s  3s left" in out.getvalue() and out.getvalue().endswith("\n")


def test_logs_get_a_line_per_tenth_not_per_submission() -> None:
    out = io.StringIO()
    bar = ProgressBar(out, interactive=False, clock=lambda: 0.0)
    for done in range(101):
        bar(done, 100)
    assert len(out.getvalue().splitlines()) == 11
