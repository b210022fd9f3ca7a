"""The public entry point: compare one AI draft with one signed report."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

from .align import align, group_findings
from .anchors import with_anchors
from .classify import classify
from .extract import analyse
from .lexicon import LEXICON
from .metrics import char_ngrams, chrf, rouge_l
from .model import Comparison
from .radpeer import suggest_radpeer


@lru_cache(maxsize=512)
def _ngrams(text: str) -> tuple[Counter[str], ...]:
    # Cached like the findings: the signed report is the repeated side in re-inference runs.
    return char_ngrams(text)


def compare(candidate: str, reference: str) -> Comparison:
    """Compare an AI draft (``candidate``) with the signed radiologist report (``reference``).

    Returns a frozen :class:`~inference.compare.model.Comparison` with the discrepancies (each with
    category, significance, quoted sentences, spans into the original strings and an explanation),
    a suggested RADPEER score and overlap scores. Raises ``TypeError`` unless both inputs are ``str``.
    """
    if not isinstance(candidate, str) or not isinstance(reference, str):
        raise TypeError(
            "compare() needs two str arguments, "
            f"got {type(candidate).__name__} and {type(reference).__name__}"
        )
    cand_findings = analyse(candidate)
    ref_findings = analyse(reference)
    pairs, matched = align(
        group_findings(cand_findings, LEXICON), group_findings(ref_findings, LEXICON), LEXICON
    )
    discrepancies = with_anchors(classify(pairs, LEXICON))
    significant = sum(1 for d in discrepancies if d.significance == "significant")
    scores = {
        "rouge_l": round(rouge_l(candidate, reference), 4),
        "chrf": round(chrf(candidate, reference, _ngrams(candidate), _ngrams(reference)), 4),
        "matched_findings": float(matched),
        "significant_errors": float(significant),
        "minor_errors": float(len(discrepancies) - significant),
        # GREEN's formula with rule-based counts; 1.0 when neither report has a positive finding.
        "green_like": round(matched / (matched + significant), 4) if matched + significant else 1.0,
    }
    return Comparison(
        discrepancies=discrepancies,
        radpeer=suggest_radpeer(discrepancies, LEXICON),
        scores=scores,
        candidate_findings=cand_findings,
        reference_findings=ref_findings,
    )
