"""A small inline-SVG chart: lines, dots and bars on linear axes with round-number ticks.

Enough for a load-test report without a plotting library or anything fetched at view time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Literal

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    color: str = PALETTE[0]
    kind: Literal["line", "dots", "bars"] = "line"


@dataclass(frozen=True, slots=True)
class Band:
    """A shaded span of the x axis, e.g. a phase of the run."""

    start: float
    end: float
    label: str
    color: str = "#f1f5f9"


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    x_label: str
    y_label: str
    series: Sequence[Series]
    x_ticks: Sequence[tuple[float, str]] | None = None
    bands: Sequence[Band] = field(default_factory=tuple)
    x_range: tuple[float, float] | None = None
    width: int = 960
    height: int = 280


def nice_step(span: float, count: int = 6) -> float:
    """A 1, 2 or 5 times a power of ten step giving about *count* ticks over *span*."""
    if span <= 0:
        return 1.0
    raw = span / count
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def label(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.3g}" if abs(value) < 10 else f"{value:,.1f}"


def render(chart: Chart) -> str:
    """The chart as an <svg> element (no namespace URL needed inline in HTML)."""
    left, right, top, bottom = 64, 30, 34, 46
    width, height = chart.width, chart.height
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [x for s in chart.series for x, _ in s.points]
    ys = [y for s in chart.series for _, y in s.points]
    if chart.x_range is not None:
        x_min, x_max = chart.x_range
    else:
        x_min, x_max = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_max <= x_min:
        x_max = x_min + 1
    y_step = nice_step(max(ys, default=1.0) or 1.0, 5)
    y_max = y_step * max(1, math.ceil((max(ys, default=1.0) or 1.0) / y_step))

    def px(x: float) -> float:
        return left + (x - x_min) / (x_max - x_min) * plot_w

    def py(y: float) -> float:
        return top + plot_h - y / y_max * plot_h

    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(chart.title)}" font-family="system-ui, sans-serif" font-size="11">',
           f'<text x="{left}" y="18" font-size="13" font-weight="600">{escape(chart.title)}</text>']
    for band in chart.bands:
        x0, x1 = px(max(band.start, x_min)), px(min(band.end, x_max))
        if x1 > x0:
            out.append(f'<rect x="{x0:.1f}" y="{top}" width="{x1 - x0:.1f}" height="{plot_h}" fill="{band.color}"/>')
            out.append(f'<text x="{x0 + 4:.1f}" y="{top + 12}" fill="#64748b">{escape(band.label)}</text>')
    tick = 0.0
    while tick <= y_max + y_step / 2:
        y = py(tick)
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#475569">{label(tick)}</text>')
        tick += y_step
    x_ticks = chart.x_ticks
    if x_ticks is None:
        step = nice_step(x_max - x_min, 10)
        first = math.ceil(x_min / step) * step
        x_ticks = [(first + i * step, label(first + i * step)) for i in range(int((x_max - first) / step) + 1)]
    for x, text in x_ticks:
        if x_min <= x <= x_max:
            out.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
                       'stroke="#475569"/>')
            out.append(f'<text x="{px(x):.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                       f'fill="#475569">{escape(text)}</text>')
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#475569"/>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" '
               f'fill="#334155">{escape(chart.x_label)}</text>')
    out.append(f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" '
               f'fill="#334155">{escape(chart.y_label)}</text>')
    for series in chart.series:
        out.append(_series(series, px, py, plot_w, x_max - x_min))
    legend_x = left + plot_w
    for series in reversed(chart.series):
        text = escape(series.name)
        legend_x -= 7 * len(series.name) + 30
        out.append(f'<rect x="{legend_x:.0f}" y="9" width="12" height="12" fill="{series.color}"/>'
                   f'<text x="{legend_x + 16:.0f}" y="19" fill="#334155">{text}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _series(series: Series, px: Callable[[float], float], py: Callable[[float], float], plot_w: float,
            x_span: float) -> str:
    if not series.points:
        return ""
    if series.kind == "dots":
        dots = "".join(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5"/>' for x, y in series.points)
        return f'<g fill="{series.color}" fill-opacity="0.75">{dots}</g>'
    if series.kind == "bars":
        bar = max(1.0, plot_w / max(x_span, 1) * 0.8)
        base = py(0)
        bars = "".join(f'<rect x="{px(x) - bar / 2:.1f}" y="{py(y):.1f}" width="{bar:.1f}" '
                       f'height="{max(0.0, base - py(y)):.1f}"/>' for x, y in series.points)
        return f'<g fill="{series.color}" fill-opacity="0.6">{bars}</g>'
    path = " ".join(f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for i, (x, y) in enumerate(series.points))
    return f'<path d="{path}" fill="none" stroke="{series.color}" stroke-width="1.8" stroke-linejoin="round"/>'
