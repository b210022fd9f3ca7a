"""Concordance discrepancy engine: compare an AI report draft with the signed radiologist report.

Pure Python (standard library only): no Django, no database. ``compare(candidate, reference)``
returns a :class:`Comparison` whose ``to_dict()`` is the JSON stored with each review case.
"""

from .engine import compare
from .extract import analyse
from .lexicon import LEXICON, Lexicon, load_lexicon
from .model import CATEGORIES, RADPEER_SCORES, Comparison, Discrepancy, Finding, Segment
from .radpeer import suggest_radpeer

__all__ = [
    "CATEGORIES",
    "LEXICON",
    "RADPEER_SCORES",
    "Comparison",
    "Discrepancy",
    "Finding",
    "Lexicon",
    "Segment",
    "analyse",
    "compare",
    "load_lexicon",
    "suggest_radpeer",
]
