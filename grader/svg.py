"""Inline SVG charts for the HTML reports: a line plot, horizontal bars, a histogram.

Plain SVG markup, no script and no external resource, so a report is one file
that any browser shows offline. Every label passes through ``html.escape``.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from html import escape
from typing import Callable, Sequence

AXIS = "#555"
GRID = "#ddd"
BAR = "#3b6fb6"
BAR_LOW = "#c8553d"  # pass rates under half: the questions a class struggled with


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    y: Sequence[float | None]  # None is a gap (a value that was not finite)
    dashed: bool = False


def line_plot(x: Sequence[float], series: Sequence[Series], title: str, width: int = 420, height: int = 250) -> str:
    """Curves over shared ``x``; the y range is that of the first series (padded), so a wild curve is
    clipped at the edges instead of flattening the reference."""
    left, right, top, bottom = 44, 12, 28, 30
    first = [v for v in series[0].y if v is not None] or [0.0]
    lo, hi = min(first), max(first)
    pad = max(0.25 * (hi - lo), 0.25)
    lo, hi = lo - pad, hi + pad
    x0, x1 = min(x), max(x)

    def px(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * (width - left - right)

    def py(v: float) -> float:
        return top + (hi - v) / (hi - lo) * (height - top - bottom)

    clip = f"clip{zlib.crc32(title.encode())}"  # unique per plot of a page, and the same on every run
    parts = [_open(width, height, title),
             f'<clipPath id="{clip}"><rect x="{left}" y="{top}" width="{width - left - right}" '
             f'height="{height - top - bottom}"/></clipPath>']
    for tick in _ticks(lo, hi):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{py(tick):.1f}" y2="{py(tick):.1f}" '
                     f'stroke="{GRID}"/><text x="{left - 4}" y="{py(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    for tick in _ticks(x0, x1):
        parts.append(f'<text x="{px(tick):.1f}" y="{height - bottom + 14}" text-anchor="middle">{tick:g}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
                 f'fill="none" stroke="{AXIS}"/>')
    for s in series:
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        for path in _segments(x, s.y, px, py):
            parts.append(f'<polyline clip-path="url(#{clip})" fill="none" stroke="{s.color}" stroke-width="2.5"'
                         f'{dash} points="{path}"/>')
    legend_x = left + 8
    for i, s in enumerate(series):
        y = top + 14 + 16 * i
        parts.append(f'<line x1="{legend_x}" x2="{legend_x + 18}" y1="{y - 4}" y2="{y - 4}" stroke="{s.color}" '
                     f'stroke-width="2.5"/><text x="{legend_x + 24}" y="{y}">{escape(s.name)}</text>')
    parts.append(f'<text x="{width / 2:.0f}" y="{height - 2}" text-anchor="middle">x</text></svg>')
    return "".join(parts)


def bar_chart(bars: Sequence[tuple[str, float]], title: str, width: int = 640) -> str:
    """Horizontal bars of fractions in [0, 1] (pass rates), one row per label."""
    label_w, row, top = 230, 18, 24
    height = top + row * len(bars) + 24
    scale = width - label_w - 50
    parts = [_open(width, height, title)]
    for i, (label, value) in enumerate(bars):
        y = top + i * row
        w = max(0.0, min(1.0, value)) * scale
        color = BAR if value >= 0.5 else BAR_LOW
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{escape(_cut(label, 34))}</text>'
                     f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 5}" fill="{color}">'
                     f'<title>{escape(label)}: {100 * value:.0f}%</title></rect>'
                     f'<text x="{label_w + w + 4:.1f}" y="{y + 13}">{100 * value:.0f}%</text>')
    bottom = top + row * len(bars)
    parts.append(f'<line x1="{label_w}" x2="{label_w}" y1="{top}" y2="{bottom}" stroke="{AXIS}"/></svg>')
    return "".join(parts)


def histogram(values: Sequence[float], maximum: float, title: str, bins: int = 10, width: int = 640,
              height: int = 240) -> str:
    """How many ``values`` fall in each of ``bins`` equal ranges of [0, maximum]."""
    left, right, top, bottom = 36, 12, 24, 34
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v / maximum * bins)) if maximum > 0 else 0)] += 1
    tallest = max(counts) or 1
    slot = (width - left - right) / bins
    parts = [_open(width, height, title)]
    for i, count in enumerate(counts):
        h = count / tallest * (height - top - bottom)
        x = left + i * slot
        lo, hi = maximum * i / bins, maximum * (i + 1) / bins
        parts.append(f'<rect class="bar" x="{x + 2:.1f}" y="{height - bottom - h:.1f}" width="{slot - 4:.1f}" '
                     f'height="{h:.1f}" fill="{BAR}"><title>{lo:g} to {hi:g}: {count}</title></rect>')
        if count:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{height - bottom - h - 3:.1f}" '
                         f'text-anchor="middle">{count}</text>')
        parts.append(f'<text x="{x + slot / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle">'
                     f'{lo:.0f}-{hi:.0f}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{height - bottom}" y2="{height - bottom}" '
                 f'stroke="{AXIS}"/><text x="{width / 2:.0f}" y="{height - 4}" text-anchor="middle">points</text>'
                 '</svg>')
    return "".join(parts)


def _open(width: int, height: int, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" font-size="11" '
            f'font-family="sans-serif"><title>{escape(title)}</title>')


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values inside [lo, hi]."""
    span = hi - lo
    if not span > 0:
        return [lo]
    step = 10 ** math.floor(math.log10(span / count))
    for m in (1, 2, 5, 10):
        if span / (m * step) <= count:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step) + 1)]


def _segments(x: Sequence[float], y: Sequence[float | None], px: Callable[[float], float],
              py: Callable[[float], float]) -> list[str]:
    """Polylines split at gaps (None or non-finite values)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for a, b in zip(x, y):
        if b is None or not math.isfinite(b):
            runs.append([])
        else:
            runs[-1].append((px(a), py(b)))
    return [p for run in runs if run for p in _paths(run)]


def _paths(points: list[tuple[float, float]]) -> list[str]:
    # values far outside the plot are pinned just outside it, so the clip keeps the line's direction
    return [" ".join(f"{a:.1f},{max(-1e4, min(1e4, b)):.1f}" for a, b in points)] if points else []


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
