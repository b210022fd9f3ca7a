"""SVG charts of the pages, built on the server (no JavaScript, no chart library).

Everything record-supplied is escaped (``format_html``) before the result is marked safe. Charts are
read without colour: each series has its own dash pattern and marker, bars carry hatch patterns and
printed values, and every chart has a title (the pages add a data table).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

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


def _value_text(value: float) -> str:
    """A chart value: whole numbers as such, others with up to two decimals."""
    return str(int(value)) if value == int(value) else f"{value:.2f}".rstrip("0").rstrip(".")


def paired_bar_chart(
    title: str, rows: Sequence[tuple[str, float, float]], *, chart_id: str, unit: str = ""
) -> SafeString:
    """Horizontal bar pairs (new version solid, original hatched), each bar labelled with side and value.

    Readable without colour: the two sides differ by fill pattern, and every bar carries its text.
    """
    row_h, bar_h, label_w, plot_w = 46, 18, 190, 340
    height = 34 + row_h * max(1, len(rows))
    top = max([1e-9, *(v for _, a, b in rows for v in (a, b))])
    parts = [
        _svg_open(chart_id, title, label_w + plot_w + 120, height),
        format_html(
            '<defs><pattern id="{0}-hatch" width="6" height="6" patternUnits="userSpaceOnUse">'
            '<path d="M0 6 L6 0" stroke="#1d2733"/></pattern></defs>'
            '<rect x="{1}" y="6" width="14" height="12" fill="#1f5f99" stroke="#1d2733"/>'
            '<text x="{2}" y="16">new version</text>'
            '<rect x="{3}" y="6" width="14" height="12" fill="url(#{0}-hatch)" stroke="#1d2733"/>'
            '<text x="{4}" y="16">original model</text>',
            chart_id,
            label_w,
            label_w + 20,
            label_w + 130,
            label_w + 150,
        ),
    ]
    for index, (label, new, original) in enumerate(rows):
        y = 30 + index * row_h
        parts.append(
            format_html(
                '<text x="{}" y="{}" class="bar-label" text-anchor="end">{}</text>',
                label_w - 8,
                y + 24,
                label,
            )
        )
        for offset, side, value, fill in (
            (0, "new", new, "#1f5f99"),
            (bar_h + 2, "orig.", original, f"url(#{chart_id}-hatch)"),
        ):
            width = plot_w * (value / top)
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}" stroke="#1d2733"/>'
                    '<text x="{}" y="{}" class="bar-value">{} {}{}</text>',
                    label_w,
                    y + offset,
                    f"{width:.1f}",
                    bar_h,
                    fill,
                    f"{label_w + width + 6:.1f}",
                    y + offset + 13,
                    side,
                    _value_text(value),
                    unit,
                )
            )
    parts.append(mark_safe("</svg>"))  # a constant
    return mark_safe("".join(str(part) for part in parts))  # noqa: S308 - format_html output or constants
