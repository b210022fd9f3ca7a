"""HTML that the templates cannot build safely on their own: highlighted report texts.

Everything user- or record-supplied is escaped here (``format_html`` / ``escape``); the result is
marked safe only after that. The SVG charts of the pages are in :mod:`portal.core.charts`.
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
