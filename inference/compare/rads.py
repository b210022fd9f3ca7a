"""Structured assessment categories (BI-RADS, Lung-RADS, LI-RADS, TI-RADS, PI-RADS, O-RADS, ...).

A category is read as a finding of its system whose grade is the category number, so two reports that
give different categories for one study differ in severity ("BI-RADS 2" against "BI-RADS 4"), and a
report that leaves the category out has missed it. Any change of category changes management (a
biopsy, a short follow-up), so it is significant.
"""

from __future__ import annotations

import re

#: System prefix (lowercase, without "-RADS") -> concept id in concepts.tsv.
SYSTEMS: dict[str, str] = {
    "bi": "birads_category",
    "lung": "lungrads_category",
    "li": "lirads_category",
    "ti": "tirads_category",
    "pi": "pirads_category",
    "o": "orads_category",
    "ni": "nirads_category",
    "cad": "cadrads_category",
}
RADS_CONCEPTS = frozenset(SYSTEMS.values())

# "BI-RADS 4", "BI-RADS Category 4A", "BI-RADS: 2", "Lung-RADS 4X", "LI-RADS LR-5", "TI-RADS TR4",
# "ACR BI-RADS assessment category 0". Bounded gaps keep the regex linear on hostile text.
RADS_RE = re.compile(
    r"\b(?P<system>bi|lung|li|ti|pi|o|ni|cad)[\s-]?rads\b[^\w\n]{0,3}"
    r"(?:(?:assessment\s+)?category\s*[:\-]?\s*|lr-?|tr-?)?(?P<number>[0-6])(?P<sub>[abcx])?\b",
    re.IGNORECASE,
)
_SUBCATEGORY = {"a": 0.25, "b": 0.5, "c": 0.75, "x": 0.5}


def rads_categories(text: str, start: int, end: int) -> list[tuple[str, float, str, tuple[int, int]]]:
    """Every category stated in ``text[start:end]``: (concept id, rank, words as written, span).

    The rank is the category number, with subcategories between whole numbers (4A < 4B < 4C < 5), so
    the engine's severity rule grades a change of category like a change of grade.
    """
    found = []
    for match in RADS_RE.finditer(text, start, end):
        concept = SYSTEMS[match.group("system").lower()]
        sub = (match.group("sub") or "").lower()
        rank = int(match.group("number")) + _SUBCATEGORY.get(sub, 0.0)
        found.append((concept, rank, match.group(), (match.start(), match.end())))
    return found
