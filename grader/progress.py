"""The batch's progress line: done/total, a bar, the rate and the time left.

On a terminal the line is redrawn in place; otherwise (a log, CI) a line is
written at every tenth of the work, so logs stay short.
"""

from __future__ import annotations

import time
from typing import Callable, TextIO


class ProgressBar:
    """Call with (done, total) as work completes; ``close()`` ends the line."""

    def __init__(self, stream: TextIO, interactive: bool, label: str = "grading",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stream, self._interactive, self._label, self._clock = stream, interactive, label, clock
        self._first: tuple[int, float] | None = None  # (done, time) of the first call: cached work is instant
        self._shown_tenth = -1
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = self._clock()
        if self._first is None:
            self._first = (done, now)
        line = render_line(self._label, done, total, self._rate(self._first, done, now))
        if self._interactive:
            self._stream.write("\r" + line.ljust(79))
            self._drawn = True
        elif (tenth := 10 * done // max(total, 1)) > self._shown_tenth or done == total:
            if tenth != self._shown_tenth:
                self._stream.write(line + "\n")
            self._shown_tenth = tenth
        self._stream.flush()

    @staticmethod
    def _rate(first: tuple[int, float], done: int, now: float) -> float | None:
        first_done, first_time = first
        if done <= first_done or now <= first_time:
            return None
        return (done - first_done) / (now - first_time)

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


def render_line(label: str, done: int, total: int, rate: float | None, width: int = 24) -> str:
    """``grading [#########...........] 12/40  3.1/s  9s left``"""
    filled = width * done // max(total, 1)
    bar = "#" * filled + "." * (width - filled)
    speed = f"{rate:.1f}/s" if rate else "-/s"
    left = f"{duration((total - done) / rate)} left" if rate else "time left unknown"
    return f"{label} [{bar}] {done}/{total}  {speed}  {left if done < total else 'done'}"


def duration(seconds: float) -> str:
    """``9s``, ``2m 05s``, ``1h 03m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"
