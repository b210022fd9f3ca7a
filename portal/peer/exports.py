"""Exports of a teaching set: a slide-like PDF (one case per page, fpdf2 as the rest of the project) and
a ZIP bundle with the same content as JSON (for other tools) and Markdown (for slides or a wiki).

Only the de-identified copies are exported; the source case numbers are left out, so a participant
cannot look a case up. Free texts go into the Markdown inside code fences longer than any backtick run
they contain, so report text can neither format nor link anything.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Sequence
from typing import Any

from fpdf import FPDF

from portal.peer.models import TeachingCase, TeachingSet

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")
TEXT_LINES = 22  # per report column on a slide; the full texts are in the bundle
SLIDE_DISCREPANCIES = 5
FORMAT_VERSION = 1


def _latin1(value: object) -> str:
    # The PDF core fonts are Latin-1; anything else prints as "?" rather than failing the export.
    text = _CONTROL.sub(" ", str(value if value is not None else ""))
    return text.encode("latin-1", "replace").decode("latin-1")


def case_payload(case: TeachingCase) -> dict[str, Any]:
    """One case as exported: position, context, the two texts, the discrepancies, the comment."""
    return {
        "number": case.position,
        "specialty": case.specialty,
        "modality": case.modality,
        "committee_radpeer": case.radpeer,
        "ai_draft": case.ai_draft,
        "signed_report": case.signed_report,
        "discrepancies": case.discrepancies,
        "committee_comment": case.committee_comment,
    }


def set_payload(teaching_set: TeachingSet, cases: Sequence[TeachingCase]) -> dict[str, Any]:
    """The whole set as JSON-ready data (no source ids, no names of who built it)."""
    return {
        "format": "concordance-teaching-set",
        "version": FORMAT_VERSION,
        "title": teaching_set.title,
        "conference_date": teaching_set.conference_date.isoformat() if teaching_set.conference_date else None,
        "description": teaching_set.description,
        "cases": [case_payload(c) for c in cases],
    }


def _fence(text: str) -> str:
    """``text`` in a code fence longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _md(text: str) -> str:
    """Inline text with HTML specials as entities and Markdown specials backslash-escaped."""
    flat = _CONTROL.sub(" ", text).replace("\n", " ")
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", flat)


def set_markdown(payload: dict[str, Any]) -> str:
    """The set as Markdown: a title, then one section per case (a horizontal rule between slides)."""
    out = [f"# {_md(payload['title'])}", ""]
    if payload["conference_date"]:
        out += [f"Conference: {payload['conference_date']}", ""]
    if payload["description"]:
        out += [_fence(payload["description"]), ""]
    for case in payload["cases"]:
        out += [
            "---",
            "",
            f"## Case {case['number']}: {_md(case['specialty'] or 'unspecified')}, "
            f"{_md(case['modality'] or 'modality not recorded')}, "
            f"committee RADPEER {_md(case['committee_radpeer'] or 'not scored')}",
            "",
        ]
        out += [
            "### AI draft",
            "",
            _fence(case["ai_draft"]),
            "",
            "### Signed report",
            "",
            _fence(case["signed_report"]),
            "",
        ]
        out += ["### Discrepancies", ""]
        for d in case["discrepancies"]:
            out.append(
                f"- **{_md(d['category_label'])}** ({_md(d['significance'])}), "
                f"committee: {_md(d['committee'])}"
            )
            out.append(f"  - finding: {_md(d['finding'])}")
            if d["ai_draft_says"]:
                out.append(f"  - AI draft says: {_md(d['ai_draft_says'])}")
            if d["signed_report_says"]:
                out.append(f"  - signed report says: {_md(d['signed_report_says'])}")
        if not case["discrepancies"]:
            out.append("- none upheld by the committee")
        out += ["", "### Committee's comment", "", _fence(case["committee_comment"] or "(none)"), ""]
    return "\n".join(out)


def set_bundle(teaching_set: TeachingSet, cases: Sequence[TeachingCase]) -> bytes:
    """A ZIP with ``teaching-set.json`` and ``teaching-set.md``."""
    payload = set_payload(teaching_set, cases)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("teaching-set.json", json.dumps(payload, indent=2, ensure_ascii=False))
        archive.writestr("teaching-set.md", set_markdown(payload))
    return buffer.getvalue()


class _Slides:
    """A landscape A4 deck: a title slide, then one slide per case."""

    def __init__(self) -> None:
        pdf = FPDF(orientation="L", unit="mm", format="A4")
        pdf.set_auto_page_break(auto=False)
        pdf.set_margins(12, 10, 12)
        pdf.set_title("Concordance teaching set")
        pdf.set_creator("Concordance")
        self.pdf = pdf

    def text(
        self, value: str, *, size: float = 10, style: str = "", width: float = 0, height: float = 5
    ) -> None:
        self.pdf.set_font("Helvetica", style=style, size=size)
        self.pdf.multi_cell(width, height, _latin1(value), new_x="LMARGIN", new_y="NEXT")

    def title_slide(self, payload: dict[str, Any]) -> None:
        self.pdf.add_page()
        self.pdf.set_y(60)
        self.text(payload["title"], size=26, style="B", height=12)
        if payload["conference_date"]:
            self.text(f"Peer-learning conference, {payload['conference_date']}", size=14, height=8)
        self.text(f"{len(payload['cases'])} anonymised case(s)", size=12, height=8)
        if payload["description"]:
            self.pdf.ln(4)
            self.text(payload["description"][:1500], size=11)

    def column(self, heading: str, body: str, x: float, y: float, width: float) -> None:
        """A report text in a column, cut to TEXT_LINES lines (the bundle holds the whole text)."""
        pdf = self.pdf
        pdf.set_xy(x, y)
        pdf.set_font("Helvetica", style="B", size=11)
        pdf.cell(width, 6, heading, new_x="LEFT", new_y="NEXT")
        pdf.set_font("Courier", size=8)
        lines = pdf.multi_cell(width, 3.6, _latin1(body), dry_run=True, output="LINES")
        if len(lines) > TEXT_LINES:
            lines = [*lines[: TEXT_LINES - 1], "[... continued in the bundle]"]
        for line in lines:
            pdf.set_x(x)
            pdf.cell(width, 3.6, line, new_x="LEFT", new_y="NEXT")

    def case_slide(self, case: dict[str, Any]) -> None:
        pdf = self.pdf
        pdf.add_page()
        self.text(
            f"Case {case['number']}  |  {case['specialty'] or 'unspecified'}  |  {case['modality'] or '-'}"
            f"  |  committee RADPEER {case['committee_radpeer'] or 'not scored'}",
            size=15,
            style="B",
            height=8,
        )
        top = pdf.get_y() + 2
        half = (pdf.w - pdf.l_margin - pdf.r_margin - 6) / 2
        self.column("AI draft", case["ai_draft"], pdf.l_margin, top, half)
        self.column("Signed report", case["signed_report"], pdf.l_margin + half + 6, top, half)
        pdf.set_xy(pdf.l_margin, top + 6 + TEXT_LINES * 3.6 + 4)
        self.text("Discrepancies upheld by the committee", size=11, style="B", height=6)
        shown = case["discrepancies"][:SLIDE_DISCREPANCIES]
        for d in shown:
            quote = f'AI: "{d["ai_draft_says"][:70]}"  Signed: "{d["signed_report_says"][:70]}"'
            self.text(
                f"- {d['category_label']} ({d['significance']}): {d['finding'][:60]}. {quote}",
                size=8.5,
                height=4,
            )
        if len(case["discrepancies"]) > len(shown):
            self.text(
                f"- and {len(case['discrepancies']) - len(shown)} more (in the bundle)", size=8.5, height=4
            )
        if not shown:
            self.text("- none", size=9)
        pdf.ln(1)
        self.text("Committee's comment", size=11, style="B", height=6)
        comment = case["committee_comment"] or "(none)"
        self.text(comment if len(comment) <= 450 else comment[:440] + " [...]", size=9, height=4.2)

    def output(self) -> bytes:
        return bytes(self.pdf.output())


def set_pdf(teaching_set: TeachingSet, cases: Sequence[TeachingCase]) -> bytes:
    """The set as slides: a title page, then exactly one page per case."""
    payload = set_payload(teaching_set, cases)
    slides = _Slides()
    slides.title_slide(payload)
    for case in payload["cases"]:
        slides.case_slide(case)
    return slides.output()
