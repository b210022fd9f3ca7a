"""Suggest a RADPEER score from the discrepancies (documented in docs/compare.md).

The suggestion only pre-fills the committee's form: 2b, 3a and 3b still go to arbitration.
"""

from __future__ import annotations

from collections.abc import Iterable

from .lexicon import LEXICON, Lexicon
from .model import SIGNIFICANT, Discrepancy

#: At most this many minor discrepancies still read as "concur" (score 1).
MINOR_ALLOWANCE = 2


def suggest_radpeer(discrepancies: Iterable[Discrepancy], lexicon: Lexicon = LEXICON) -> str:
    """Return "1", "2a", "2b", "3a" or "3b".

    - 3b: a critical finding missed, falsely reported, or placed on the wrong side.
    - 3a: two or more significant discrepancies without a critical miss (the draft is unreliable).
    - 2b: exactly one significant discrepancy.
    - 2a: no significant discrepancy but more than ``MINOR_ALLOWANCE`` minor ones.
    - 1: no significant discrepancy and at most ``MINOR_ALLOWANCE`` minor ones.
    """
    items = list(discrepancies)
    significant = [d for d in items if d.significance == SIGNIFICANT]
    for item in significant:
        concept = lexicon.concepts.get(item.concept)
        critical = concept.critical if concept else False
        wrong_side = item.category == "location" and item.detail == "laterality"
        if critical and (item.category in ("missed_finding", "false_finding") or wrong_side):
            return "3b"
    if len(significant) >= 2:
        return "3a"
    if len(significant) == 1:
        return "2b"
    if len(items) > MINOR_ALLOWANCE:
        return "2a"
    return "1"
