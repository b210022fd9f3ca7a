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
    """Words of a text to highlight for one discrepancy; ``index`` numbers the marks of a discrepancy
    on one side (0 is the one its quote links to: its id is ``<side>-mark-<id>``, the others'
    ``<side>-mark-<id>-<index>``).
    """

    start: int
    end: int
    discrepancy_id: int
    significance: str
    label: str
    index: int = 0

    def anchor(self, side: str) -> str:
        """The element id of this mark on ``side`` (what the quote links point at)."""
        suffix = f"-{self.index}" if self.index else ""
        return f"{side}-mark-{self.discrepancy_id}{suffix}"


def marks_of(discrepancy: object, side: str, label: str) -> list[Mark]:
    """The marks of one discrepancy on one side: the engine's word marks, else the quoted span."""
    spans = [tuple(m) for m in (getattr(discrepancy, f"{side}_marks") or []) if len(m) == 2]
    if not spans:
        start, end = getattr(discrepancy, f"{side}_start"), getattr(discrepancy, f"{side}_end")
        spans = [(start, end)] if start is not None and end is not None else []
    pk, significance = discrepancy.pk, discrepancy.significance  # type: ignore[attr-defined]
    ordered = sorted({(int(s), int(e)) for s, e in spans if int(e) > int(s) >= 0})
    return [Mark(s, e, pk, significance, label, index) for index, (s, e) in enumerate(ordered)]


def anchors(text: str, marks: Sequence[Mark], side: str) -> set[str]:
    """The ids :func:`highlight` gives ``marks`` in ``text`` (every mark inside the text has one)."""
    return {mark.anchor(side) for mark in marks if mark.start < min(mark.end, len(text))}


def highlight(text: str, marks: Sequence[Mark], *, side: str) -> SafeString:
    """``text`` with every mark wrapped in ``<mark>`` at its exact characters.

    Overlapping marks (two discrepancies on the same words, a finding's mark inside another's) are cut
    into pieces at every mark boundary; each mark's id sits on the piece where it starts, so every
    mark keeps its id and every quote link lands. A piece covered by several marks takes the most
    significant one's style and lists every label.
    """
    kept = [m for m in marks if m.start < min(m.end, len(text))]
    bounds = sorted({0, len(text), *(m.start for m in kept), *(min(m.end, len(text)) for m in kept)})
    parts: list[str] = []
    for left, right in zip(bounds, bounds[1:], strict=False):
        covering = [m for m in kept if m.start <= left and right <= m.end]
        if not covering:
            parts.append(escape(text[left:right]))
            continue
        starting = sorted((m for m in covering if m.start == left), key=lambda m: (m.discrepancy_id, m.index))
        # A second mark starting at the same character gets an empty anchor of its own.
        parts.extend(
            format_html('<span class="mark-anchor" id="{}"></span>', m.anchor(side)) for m in starting[1:]
        )
        lead = starting[0] if starting else None
        main = min(covering, key=lambda m: (m.significance != "significant", m.discrepancy_id))
        parts.append(
            format_html(
                '<mark class="disc disc-{}"{} data-testid="highlight-{}-{}" data-discrepancy="{}" '
                'title="{}">{}{}</mark>',
                main.significance,
                format_html(' id="{}"', lead.anchor(side)) if lead else "",
                side,
                main.discrepancy_id,
                " ".join(str(m.discrepancy_id) for m in covering),
                "; ".join(dict.fromkeys(m.label for m in covering)),
                text[left:right],
                format_html(
                    '<sup class="disc-tag">{}</sup>', "!" if main.significance == "significant" else "~"
                )
                if any(min(m.end, len(text)) == right for m in covering)
                else "",
            )
        )
    return mark_safe("".join(parts))  # noqa: S308 - every part above is escaped
