"""``report.pdf``: cover sheet, one timeline per study with the engine's differences highlighted, and the
chain of custody.

Every text from the records is made safe before it reaches fpdf2: control characters removed and
characters outside Latin-1 (the core fonts' range) replaced, so hostile text can neither break the
document nor smuggle markup (fpdf2 interprets none unless asked, and we never ask).
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from typing import Any

from fpdf import FPDF

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_MAX_TEXT = 600
# Courier is 0.6 em wide: at 7.5 pt that is 1.59 mm, so 180 mm of A4 text width holds 113 columns.
_COURIER_COLUMNS = 110
RED = (180, 0, 0)
BLACK = (0, 0, 0)
GREY = (90, 90, 90)


def safe(value: object, limit: int = _MAX_TEXT) -> str:
    """Printable Latin-1 text, shortened to ``limit`` characters (the full texts are in records/)."""
    text = _CONTROL.sub(" ", str(value if value is not None else ""))
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text.encode("latin-1", "replace").decode("latin-1")


@dataclasses.dataclass
class TimelineEntry:
    """One line of a study's timeline: when, what, and whether it is a highlighted difference."""

    when: str
    what: str
    highlight: bool = False


@dataclasses.dataclass
class StudyTimeline:
    """What the PDF says about one study."""

    accession: str
    description: str
    entries: list[TimelineEntry]


class ReportPdf:
    """Builds the PDF as the studies stream past; :meth:`output` returns the bytes."""

    def __init__(self) -> None:
        pdf = FPDF(format="A4")
        pdf.set_auto_page_break(auto=True, margin=15)
        pdf.set_title("Concordance legal export")
        pdf.set_creator("Concordance")
        self.pdf = pdf

    def _line(
        self, text: str, *, size: int = 9, style: str = "", color: tuple = BLACK, height: float = 4.5
    ) -> None:
        pdf = self.pdf
        pdf.set_font("Helvetica", style=style, size=size)
        pdf.set_text_color(*color)
        pdf.multi_cell(0, height, safe(text), new_x="LMARGIN", new_y="NEXT")

    def cover(self, facts: list[tuple[str, str]], scope: dict[str, Any], counts: dict[str, int]) -> None:
        """Page 1: who asked for what, when, and what the package holds."""
        self.pdf.add_page()
        self._line("Concordance legal export package", size=16, style="B", height=9)
        self._line(
            "A signed, self-verifying record of AI outputs, signed reports and their audit trail.", color=GREY
        )
        self.pdf.ln(4)
        for label, value in facts:
            self._line(f"{label}: {value}")
        self.pdf.ln(2)
        self._line("Scope", style="B", size=11, height=6)
        for key, value in sorted(scope.items()):
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            self._line(f"{key}: {shown}")
        self.pdf.ln(2)
        self._line("Contents", style="B", size=11, height=6)
        for key, value in counts.items():
            self._line(f"{key}: {value}")
        self.pdf.ln(2)
        self._line(
            "Verify this package with the verify_package.py it contains: "
            "python verify_package.py PACKAGE.zip "
            "--public-key ORGANISATION_KEY.pem (see VERIFY.md). Differences found by the discrepancy engine "
            "are printed in red.",
            color=GREY,
        )
        self.pdf.add_page()
        self._line("Per-study timelines", size=13, style="B", height=7)

    def study(self, timeline: StudyTimeline) -> None:
        """One study's timeline; engine differences in red.

        Timelines use Courier and wrap by character count: fpdf2's proportional line breaking measures
        every character again for each candidate break, which dominated the build time of large scopes.
        """
        pdf = self.pdf
        if pdf.get_y() > 250:
            pdf.add_page()
        pdf.ln(2)
        pdf.set_font("Courier", style="B", size=9)
        pdf.set_text_color(*BLACK)
        heading = safe(f"Study {timeline.accession}  {timeline.description}", limit=300)
        for line in textwrap.wrap(heading, _COURIER_COLUMNS * 75 // 90) or [""]:
            pdf.cell(0, 4.5, line, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Courier", size=7.5)
        for entry in timeline.entries:
            pdf.set_text_color(*(RED if entry.highlight else BLACK))
            prefix = "! " if entry.highlight else "  "
            text = safe(f"{prefix}{entry.when + '  ' if entry.when else ''}{entry.what}")
            for line in textwrap.wrap(text, _COURIER_COLUMNS, subsequent_indent="      ") or [""]:
                pdf.cell(0, 3.6, line, new_x="LMARGIN", new_y="NEXT")

    def custody(self, entries: list[tuple[str, str]]) -> None:
        """The chain-of-custody page."""
        self.pdf.add_page()
        self._line("Chain of custody", size=13, style="B", height=7)
        for label, value in entries:
            self._line(label, style="B")
            self._line(value, color=GREY)
            self.pdf.ln(1)

    def output(self) -> bytes:
        """The finished PDF."""
        return bytes(self.pdf.output())
