"""HTML that the templates cannot build safely on their own: highlighted report texts and SVG charts.

Everything user- or record-supplied is escaped here (``format_html`` / ``escape``); the result is
marked safe only after that. Charts are read without colour: each series has its own dash pattern and
marker, bars carry hatch patterns and printed values, and every chart has a title and a data table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe


@dataclasses.dataclass(frozen=True)
class Mark:
    """A span of a text to highlight for one discrepancy."""

    start: int
    end: int
    discrepancy_id: int
    significance: str
    label: str


def highlight(text: str, marks: Sequence[Mark], *, side: str) -> SafeString:
    """``text`` with every mark wrapped in ``<mark>`` at its exact characters (overlaps are clipped)."""
    parts: list[str] = []
    position = 0
    for mark in sorted(marks, key=lambda m: (m.start, m.end)):
        start, end = max(mark.start, position), min(mark.end, len(text))
        if end <= start:
            continue
        parts.append(escape(text[position:start]))
        parts.append(
            format_html(
                '<mark class="disc disc-{}" id="{}-mark-{}" data-testid="highlight-{}-{}" '
                'data-discrepancy="{}" title="{}">{}<sup class="disc-tag">{}</sup></mark>',
                mark.significance,
                side,
                mark.discrepancy_id,
                side,
                mark.discrepancy_id,
                mark.discrepancy_id,
                mark.label,
                text[start:end],
                "!" if mark.significance == "significant" else "~",
            )
        )
        position = end
    parts.append(escape(text[position:]))
    return mark_safe("".join(parts))  # noqa: S308 - every part above is escaped


# --- Charts ------------------------------------------------------------------------------------------

DASHES = ("", "6 4", "2 3", "10 3 2 3", "1 6")
MARKERS = ("circle", "square", "triangle", "diamond", "cross")
PATTERNS = ("hatch", "dots", "cross", "vertical", "solid")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP, RIGHT = 640, 240, 48, 36, 16, 120


def _f(value: float) -> str:
    """A coordinate or number with one decimal (format_html escapes its arguments, so format first)."""
    return f"{value:.1f}"


def _marker(kind: str, x: float, y: float) -> str:
    if kind == "circle":
        return format_html('<circle cx="{}" cy="{}" r="3.5" fill="#fff" stroke="#1d2733"/>', _f(x), _f(y))
    if kind == "square":
        return format_html(
            '<rect x="{}" y="{}" width="7" height="7" fill="#1d2733"/>', _f(x - 3.5), _f(y - 3.5)
        )
    if kind == "triangle":
        return format_html('<path d="M{} {} l4 7 h-8 z" fill="#1d2733"/>', _f(x), _f(y - 4))
    if kind == "diamond":
        return format_html(
            '<path d="M{} {} l4 4 l-4 4 l-4 -4 z" fill="#fff" stroke="#1d2733"/>', _f(x), _f(y - 4)
        )
    return format_html('<path d="M{} {} l7 7 m0 -7 l-7 7" stroke="#1d2733"/>', _f(x - 3.5), _f(y - 3.5))


def _svg_open(chart_id: str, title: str, width: int, height: int) -> str:
    return format_html(
        '<svg class="chart" id="{}" role="img" aria-labelledby="{}-title" viewBox="0 0 {} {}" '
        'xmlns="http://www.w3.org/2000/svg"><title id="{}-title">{}</title>',
        chart_id,
        chart_id,
        width,
        height,
        chart_id,
        title,
    )


def line_chart(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *, chart_id: str
) -> SafeString:
    """A percentage line chart (0 to the largest value) with its own dash pattern and marker per series."""
    values = [v for _, points in series for v in points if v is not None]
    top = max([*values, 0.01])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(labels) - 1)

    def y_of(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    out = [_svg_open(chart_id, title, WIDTH, HEIGHT)]
    for frac in (0, 0.5, 1):
        y = y_of(top * frac)
        out.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#d5dde6"/>', LEFT, WIDTH - RIGHT, _f(y), _f(y)
            )
        )
        out.append(
            format_html(
                '<text x="{}" y="{}" class="axis" text-anchor="end">{}%</text>',
                LEFT - 4,
                _f(y + 4),
                _f(top * frac * 100),
            )
        )
    if labels:
        for i in sorted({0, len(labels) - 1}):
            out.append(
                format_html(
                    '<text x="{}" y="{}" class="axis" text-anchor="middle">{}</text>',
                    _f(LEFT + i * step),
                    HEIGHT - 12,
                    labels[i],
                )
            )
    for index, (name, points) in enumerate(series):
        dash, marker = DASHES[index % len(DASHES)], MARKERS[index % len(MARKERS)]
        coords = [(LEFT + i * step, y_of(v)) for i, v in enumerate(points) if v is not None]
        if not coords:
            continue
        path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f} {y:.1f}" for i, (x, y) in enumerate(coords))
        out.append(
            format_html(
                '<path d="{}" fill="none" stroke="#1d2733" stroke-width="1.6" stroke-dasharray="{}"/>',
                path,
                dash,
            )
        )
        out.extend(_marker(marker, x, y) for x, y in coords)
        last_x, last_y = coords[-1]
        out.append(
            format_html(
                '<text x="{}" y="{}" class="series-label">{}</text>', _f(last_x + 8), _f(last_y + 4), name
            )
        )
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308 - parts are format_html output or constants


def bar_chart(title: str, items: Sequence[tuple[str, float, str]], *, chart_id: str) -> SafeString:
    """Horizontal bars with a hatch pattern each and the value printed (``items``: label, value, text)."""
    row_h, label_w, plot_w = 26, 170, 360
    height = row_h * max(1, len(items)) + 10
    top = max([*(v for _, v, _ in items), 1e-9])
    out = [
        _svg_open(chart_id, title, label_w + plot_w + 90, height),
        format_html(
            '<defs><pattern id="{0}-hatch" width="6" height="6" patternUnits="userSpaceOnUse">'
            '<path d="M0 6 L6 0" stroke="#1d2733"/></pattern>'
            '<pattern id="{0}-dots" width="5" height="5" patternUnits="userSpaceOnUse">'
            '<circle cx="2.5" cy="2.5" r="1.2" fill="#1d2733"/></pattern>'
            '<pattern id="{0}-cross" width="6" height="6" patternUnits="userSpaceOnUse">'
            '<path d="M0 0 L6 6 M6 0 L0 6" stroke="#1d2733"/></pattern>'
            '<pattern id="{0}-vertical" width="5" height="5" patternUnits="userSpaceOnUse">'
            '<path d="M2 0 V5" stroke="#1d2733"/></pattern></defs>',
            chart_id,
        ),
    ]
    for index, (label, value, text) in enumerate(items):
        y = 5 + index * row_h
        pattern = PATTERNS[index % len(PATTERNS)]
        fill = "#1f5f99" if pattern == "solid" else f"url(#{chart_id}-{pattern})"
        width = plot_w * (value / top)
        out.append(
            format_html(
                '<text x="{}" y="{}" class="bar-label" text-anchor="end">{}</text>',
                label_w - 6,
                y + 16,
                label,
            )
        )
        out.append(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="18" fill="{}" stroke="#1d2733"/>',
                label_w,
                y + 2,
                _f(width),
                fill,
            )
        )
        out.append(
            format_html(
                '<text x="{}" y="{}" class="bar-value">{}</text>', _f(label_w + width + 6), y + 16, text
            )
        )
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308 - parts are format_html output or constants
