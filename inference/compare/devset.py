"""Build labelled pairs from REAL report texts with one controlled edit each (issue #16).

The texts (``tests/data/compare/real/reports.jsonl``) are signed reports written by other
radiologists; nothing in them is ours. Each pair takes one report as it is and one copy with a single
controlled edit applied to every mention of one finding:

- ``missed_finding`` / ``false_finding``: every positive sentence naming the finding is removed from
  the draft (missed) or from the signed report (false);
- ``location``: left and right are swapped in every sentence naming the finding;
- ``severity``: the grade word (mild <-> severe, small <-> large) or the measurement changes;
- ``certainty``: the hedge that governs the finding is removed (and, in the reverse pair, the draft
  keeps the hedge the signed report has lost);
- ``comparison_omitted`` / ``comparison_added``: the change words are removed from the draft, or
  from the signed report;
- every pair of the first two kinds also comes reversed (the edited text as the signed report);
- wording-only edits change words but not meaning (expected: no discrepancy);
- normal pairs are two different reports that both describe a normal study (expected: none).

The finding patterns and cue lists here are deliberately independent of the engine's lexicon, so the
set measures the engine rather than echoing it. Every record carries ``split``: a report is held out
when a stable hash of its id says so, and every pair built from it inherits that.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

REAL_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "compare" / "real"
#: One report in this many is held out of tuning.
HELD_OUT_EVERY = 4

#: Label name -> regex of the finding's head words (independent of the engine's lexicon).
FINDINGS: dict[str, str] = {
    "pleural effusion": r"(?:pleural )?effusions?",
    "pneumothorax": r"pneumothora(?:x|ces)",
    "cardiomegaly": r"cardiomegaly",
    "atelectasis": r"atelectasis",
    "consolidation": r"consolidations?",
    "pneumonia": r"pneumonia",
    "lung opacity": r"(?:air ?space )?opacit(?:y|ies)|infiltrates?|airspace disease",
    "pulmonary nodule": r"(?:pulmonary |lung )?nodules?",
    "calcified granuloma": r"(?:calcified )?granulomas?",
    "emphysema": r"(?<!subcutaneous )emphysema(?:tous changes?)?|copd",
    "pulmonary edema": r"(?:pulmonary |interstitial )?edema",
    "scarring": r"scarring|scar",
    "hiatal hernia": r"hiatal hernia",
    "scoliosis": r"scoliosis",
    "fracture": r"fractures?",
    "degenerative change": r"degenerative (?:joint )?(?:changes?|disease)|spondylosis",
    "mass": r"mass(?:es)?",
    "cyst": r"cysts?",
    "hydronephrosis": r"hydronephrosis",
}
#: Other words for the same finding: a drop edit is only made when none of them stays positive in the
#: edited report, so "the edit is applied to every mention of the finding" holds.
ALSO_CALLED: dict[str, str] = {
    "pleural effusion": r"costophrenic (?:angle )?blunting|blunting of the (?:\w+ )?costophrenic|"
    r"pleural fluid",
    "cardiomegaly": r"(?:heart|cardiac silhouette|heart size)(?: size)? (?:is |are |appears |remains )?"
    r"(?:\w+ly )?(?:enlarged|increased)|enlarged (?:heart|cardiac)|cardiac enlargement",
    "atelectasis": r"volume loss|collapse|atelectatic",
    "lung opacity": r"densit(?:y|ies)|airspace disease|consolidation|infiltrate|haziness|opacification",
    "consolidation": r"consolidat\w+|airspace disease",
    "pneumonia": r"infecti\w+|pneumonitis",
    "emphysema": r"hyperinfla\w+|hyperexpan\w+|overinfla\w+|copd|chronic obstructive",
    "pulmonary nodule": r"nodular",
    "calcified granuloma": r"calcified (?:nodule|densit\w+|lymph)|granulomatous",
    "pulmonary edema": r"vascular congestion|interstitial (?:markings|prominence)|cephalization|chf|"
    r"heart failure",
    "scarring": r"fibrosis|fibrotic|scarr\w+",
    "fracture": r"fracture\w*|fx\b",
    "degenerative change": r"osteophyt\w+|spondylo\w+|arthriti\w+|arthropath\w+|spur\w*",
    "mass": r"lesion|tumou?r|neoplasm|carcinoma",
}
_ALSO_RES = {name: re.compile(rf"\b(?:{pattern})", re.I) for name, pattern in ALSO_CALLED.items()}
_FINDING_RES = {name: re.compile(rf"\b(?:{pattern})\b", re.I) for name, pattern in FINDINGS.items()}
_NEGATION_RE = re.compile(
    r"\b(?:no|not|without|negative|clear|free|resolved|resolution|absent|removed|exclude[ds]?|r/o|"
    r"rule out)\b",
    re.I,
)
# "Not seen on prior exams" dates a finding as new; it does not deny it (corrected 2026-12-03, issue #19).
_NOT_SEEN_RE = re.compile(
    r"\b(?:is|are) not (?:seen|identified|visualized)\b(?! (?:on|in) (?:the )?(?:prior|previous|earlier))"
    r"|\bnot seen\b(?! (?:on|in) (?:the )?(?:prior|previous|earlier))",
    re.I,
)
_GONE_RE = re.compile(r"\b(?:resolved|cleared|no longer|removed|interval resolution)\b", re.I)
_HEDGE_RE = re.compile(
    r"\b(?:may|might|could|possible|possibly|probable|probably|likely|suspicious|concerning|question|"
    r"questionable|suggest\w*|versus|vs|cannot|differential|consider\w*|borderline|favor\w*)\b",
    re.I,
)
_SIDE_RE = re.compile(r"\b(left|right)\b", re.I)
_BOTH_SIDES_RE = re.compile(r"\b(?:bilateral\w*|bibasilar|both|left and right|right and left)\b", re.I)
_GRADES = {
    "mild": "severe", "mildly": "severely", "minimal": "large", "minimally": "markedly", "small": "large",
    "tiny": "large", "trace": "large", "large": "small", "severe": "mild", "severely": "mildly",
    "marked": "mild", "markedly": "mildly", "moderate": "trace", "moderately": "minimally",
    "extensive": "minimal", "borderline": "marked",
}  # fmt: skip
_GRADE_RE = re.compile(rf"\b({'|'.join(_GRADES)})\b", re.I)
_SIZE_RE = re.compile(r"\b(\d+(?:\.\d+)?)(\s*(?:mm|cm)\b)", re.I)
#: Hedge removals: (pattern, replacement) making a hedged finding definite.
_DEHEDGE: tuple[tuple[str, str], ...] = (
    (r"\b[Tt]here (?:may|might|could) be\b", "There is"),
    (r"\b(?:may|might|could) (?:represent|reflect|indicate|be)\b", "represents"),
    (r"\b(?:is|are) (?:likely|probably|possibly)\b", "is"),
    (r"\b(?:suspicious|concerning|worrisome) for\b", "consistent with"),
    (r"\b(?:cannot|can not) be (?:excluded|ruled out)\b", "is present"),
    (r"\b(?:most )?(?:likely|probable|possible|questionable|probably|possibly)\s+", ""),
    (r"\bsuggestive of\b", "consistent with"),
)
#: Change cues removed for comparison edits: (pattern, replacement).
_UNCHANGE: tuple[tuple[str, str], ...] = (
    (r"\b(?:is|are) (?:again )?(?:stable|unchanged)(?: in (?:size|appearance))?", "is present"),
    (r"\b(?:remains?|persists?) (?:stable|unchanged)\b", "is present"),
    (r",? (?:stable|unchanged)(?: (?:from|since|compared (?:to|with)) (?:the )?prior"
     r"(?: study| exam)?)?(?=[.,;])", ""),
    (r"\b(?:stable|unchanged|persistent|new|newly|improved|improving|worsened|worsening|resolving|"
     r"redemonstrated)\s+", ""),
    (r"\b(?:again|now) (seen|noted|demonstrated|identified)\b", r"\1"),
    (r"\b(?:interval|slight|mild) (?:increase|decrease|improvement|worsening) (?:in|of)\s+", ""),
    (r",? (?:not significantly changed|similar to prior|as before|compared to prior|since prior)\b", ""),
)  # fmt: skip
#: Change cues. "Increased"/"decreased" are left out: in "decreased vascular markings" they describe the
#: finding, not a change from the prior, and removing them would be a second, unlabelled edit.
_CHANGE_RE = re.compile(
    r"\b(?:stable|unchanged|persistent|persists?|new|newly|improv\w+|worse\w*|"
    r"resolving|again (?:seen|noted|demonstrated|identified)|redemonstrated|interval|similar|"
    r"(?:compared|prior|previous)\w*)\b",
    re.I,
)
#: Meaning-preserving rewrites for wording-only pairs.
_REWORD: tuple[tuple[str, str], ...] = (
    (r"\bThere (?:is|are) no\b", "No"),
    (r"\bThe lungs are clear\b", "Lungs are clear"),
    (r"\bThe heart is normal in size\b", "Heart size is normal"),
    (r"\bwithin normal limits\b", "normal"),
    (r"\bNo acute cardiopulmonary (?:abnormality|disease|process)\b", "No acute cardiopulmonary findings"),
    (r"\bcardiomediastinal silhouette\b", "cardiomediastinal contours"),
    (r"\bosseous structures\b", "bony structures"),
    (r"\bunremarkable\b", "normal"),
)
_SENTENCE_RE = re.compile(r"[^.\n]+(?:\.+(?!\d)|$)", re.M)


def is_held_out(report_id: str) -> bool:
    """True for reports kept out of tuning (a stable hash of the id, about one in four)."""
    return int(hashlib.sha256(report_id.encode()).hexdigest(), 16) % HELD_OUT_EVERY == 0


def load_reports(directory: Path = REAL_DIR) -> list[dict[str, Any]]:
    """Read reports.jsonl; every record gets ``text`` (the report as a reader sees it)."""
    with (directory / "reports.jsonl").open(encoding="utf-8") as handle:
        return [with_text(json.loads(line)) for line in handle if line.strip()]


def with_text(record: dict[str, Any]) -> dict[str, Any]:
    """Give a stored report its ``text``: IU sections become "FINDINGS: ..." lines, verbatim."""
    if "text" not in record:
        sections = record["sections"]
        record["text"] = "\n".join(f"{name.upper()}: {sections[name]}" for name in sections if sections[name])
    return record


#: Only the reading is edited: the indication asks a question, the comparison names a date, the exam line
#: and the history say what was done and why. A report's sections run from its header to the next one;
#: IU reports put each section on one line, MTSamples reports put the header on a line of its own.
_EDITED_HEADER_RE = re.compile(
    r"(?:FINDINGS?|IMPRESSIONS?|INTERPRETATION|CONCLUSIONS?|OPINION|TECHNIQUE AND FINDINGS)\s*:\s*"
)
_KEPT_HEADER_RE = re.compile(
    r"(?:INDICATIONS?|COMPARISONS?|EXAM(?:INATION)?|HISTORY|CLINICAL[A-Z ]*|REASONS? FOR [A-Z ]+|"
    r"TECHNIQUE|PROCEDURE|MEDICATIONS?|SYMPTOMS?)\s*:",
    re.I,
)


def _edited_regions(text: str) -> list[tuple[int, int]]:
    """Spans of the findings and impression sections (the whole text when it names neither)."""
    regions: list[tuple[int, int]] = []
    editing = not any(_EDITED_HEADER_RE.match(line) for line in text.splitlines())
    cursor = 0
    for line in text.splitlines(keepends=True):
        start, end = cursor, cursor + len(line.rstrip("\n"))
        cursor += len(line)
        header = _EDITED_HEADER_RE.match(line)
        if header:
            editing, start = True, start + header.end()
        elif _KEPT_HEADER_RE.match(line):
            editing = False
        if editing and start < end:
            regions.append((start, end))
    return regions


def _sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans of the findings and impression sections."""
    return [
        (m.start(), m.end())
        for start, end in _edited_regions(text)
        for m in _SENTENCE_RE.finditer(text, start, end)
        if m.group().strip()
    ]


def _positive(sentence: str, match: re.Match[str]) -> bool:
    """A mention is positive when no negation cue precedes it in its sentence."""
    return (
        not _NEGATION_RE.search(sentence[: match.start()])
        and not _GONE_RE.search(sentence)
        and not _NOT_SEEN_RE.search(sentence, match.end())
    )


def _mentions(text: str, name: str) -> tuple[list[tuple[int, int]], bool]:
    """Sentences that name the finding positively, and whether any names it only with others.

    Returns (spans, clean): ``clean`` is False when one of those sentences also names another finding,
    so an edit to it would change two findings at once.
    """
    spans, clean = [], True
    for start, end in _sentences(text):
        sentence = text[start:end]
        match = _FINDING_RES[name].search(sentence)
        if match is None:
            continue
        if not _positive(sentence, match):
            continue
        spans.append((start, end))
        others = [o for o, rx in _FINDING_RES.items() if o != name and rx.search(sentence)]
        clean = clean and not others
    return spans, clean


Span = tuple[int, int]


def _still_said(text: str, name: str, also: re.Pattern[str] | None = None) -> bool:
    """True when the finding is still stated positively (by its name or another word) somewhere.

    With ``also``, only sentences that also match it count ("still stated with a change word").
    """
    patterns = [_FINDING_RES[name]] + ([_ALSO_RES[name]] if name in _ALSO_RES else [])
    for start, end in _sentences(text):
        sentence = text[start:end]
        if also is not None and not also.search(sentence):
            continue
        for pattern in patterns:
            match = pattern.search(sentence)
            if match and _positive(sentence, match):
                return True
    return False


def _rewrite(text: str, spans: list[Span], edit: Any) -> tuple[str, list[Span]] | None:
    """Apply ``edit(sentence) -> str | None`` to each span; None when any edit fails or nothing changes.

    Returns the new text and the spans of the edited sentences in it (a removed sentence has none).
    """
    pieces, cursor, changed, length = [], 0, False, 0
    new_spans: list[Span] = []
    for start, end in spans:
        new = edit(text[start:end])
        if new is None:
            return None
        changed = changed or new != text[start:end]
        pieces.append(text[cursor:start])
        length += start - cursor
        if new:
            new_spans.append((length, length + len(new)))
        pieces.append(new)
        length += len(new)
        cursor = end
    pieces.append(text[cursor:])
    return ("".join(pieces), new_spans) if changed else None


def _sides(text: str, spans: list[Span]) -> set[str]:
    return {m.group(1).lower() for start, end in spans for m in _SIDE_RE.finditer(text, start, end)}


def _swap_side(sentence: str) -> str | None:
    if _BOTH_SIDES_RE.search(sentence):
        return None
    sides = {m.group(1).lower() for m in _SIDE_RE.finditer(sentence)}
    if len(sides) != 1:
        return None

    def swap(m: re.Match[str]) -> str:
        word = "right" if m.group(1).lower() == "left" else "left"
        return word.capitalize() if m.group(1)[0].isupper() else word

    return _SIDE_RE.sub(swap, sentence)


def _regrade(sentence: str) -> str | None:
    if _GRADE_RE.search(sentence):

        def grade(m: re.Match[str]) -> str:
            word = _GRADES[m.group(1).lower()]
            return word.capitalize() if m.group(1)[0].isupper() else word

        return _GRADE_RE.sub(grade, sentence)
    if _SIZE_RE.search(sentence):
        return _SIZE_RE.sub(lambda m: f"{float(m.group(1)) * 2.5:g}{m.group(2)}", sentence)
    return None


def _dehedge(sentence: str, finding: re.Pattern[str]) -> str | None:
    # The hedge must govern this finding: a cue up to 40 characters before it, or "cannot be excluded"
    # right after it. "Cardiomegaly with prominent aorta which may be accentuated" hedges the aorta.
    match = finding.search(sentence)
    if match is None:
        return None
    window = sentence[max(0, match.start() - 40) : match.start()] + sentence[match.end() : match.end() + 25]
    if not _HEDGE_RE.search(window):
        return None
    new = sentence
    for pattern, replacement in _DEHEDGE:
        new = re.sub(pattern, replacement, new, flags=re.I)
    if _HEDGE_RE.search(new) or new == sentence:
        return None
    return new[0].upper() + new[1:] if new.strip() else None


def _unchange(sentence: str) -> str | None:
    if not _CHANGE_RE.search(sentence):
        return None
    new = sentence
    for pattern, replacement in _UNCHANGE:
        new = re.sub(pattern, replacement, new, flags=re.I)
    if _CHANGE_RE.search(new) or new == sentence:
        return None
    lead = len(new) - len(new.lstrip())
    return new[:lead] + new[lead : lead + 1].upper() + new[lead + 1 :]


def _drop(sentence: str) -> str:
    return ""


def _pair(
    report: dict[str, Any], kind: str, candidate: str, reference: str, expected: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "id": f"{report['id']}-{kind}",
        "candidate": candidate,
        "reference": reference,
        "expected": expected,
        "kind": "wording" if kind.startswith("wording") else "edit",
        "split": "held_out" if is_held_out(report["id"]) else "tuned",
        "source": report["source"],
        "note": f"controlled edit {kind} of {report['id']}",
    }


def edit_pairs(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield every controlled-edit pair one report supports (at most one finding per category)."""
    text = report["text"]
    done: set[str] = set()
    for name in FINDINGS:
        spans, clean = _mentions(text, name)
        if not spans or not clean:
            continue
        label = [{"finding": name}]
        edits = (
            ("missed", _drop, ("missed_finding", "false_finding")),
            ("side", _swap_side, ("location", None)),
            ("grade", _regrade, ("severity", None)),
            ("hedge", partial(_dehedge, finding=_FINDING_RES[name]), ("certainty", "certainty")),
            ("change", _unchange, ("comparison_omitted", "comparison_added")),
        )
        for tag, edit, (forward, backward) in edits:
            if tag in done:
                continue
            if tag == "side" and len(_sides(text, spans)) != 1:
                # Findings on both sides swapped together describe the same two findings again.
                continue
            result = _rewrite(text, spans, edit)
            if result is None or not result[0].strip():
                continue
            edited, edited_spans = result
            if tag == "missed" and _still_said(edited, name):
                continue
            if tag == "change" and _still_said(edited, name, _CHANGE_RE):
                # "The cardiac silhouette is mildly enlarged, similar to prior" still dates it.
                continue
            done.add(tag)
            # Where the edit is, in each text: a prediction that quotes it names the edited finding.
            where = {"candidate": edited_spans, "reference": spans}
            yield _pair(
                report,
                f"{tag}-{name.replace(' ', '_')}",
                edited,
                text,
                [{**label[0], "category": forward, "where": where}],
            )
            if backward:
                swapped = {"candidate": spans, "reference": edited_spans}
                yield _pair(
                    report,
                    f"{tag}-back-{name.replace(' ', '_')}",
                    text,
                    edited,
                    [{**label[0], "category": backward, "where": swapped}],
                )


def wording_pair(report: dict[str, Any]) -> dict[str, Any] | None:
    """A meaning-preserving rewrite of the whole report (expected: no discrepancy), or None."""
    text = report["text"]
    new = text
    for pattern, replacement in _REWORD:
        new = re.sub(pattern, replacement, new)
    if new == text:
        return None
    return _pair(report, "wording", new, text, [])


def normal_pairs(reports: list[dict[str, Any]], seed: int = 16) -> list[dict[str, Any]]:
    """Pair every normal chest report with a different normal one of the same split."""
    rng = random.Random(seed)
    pairs = []
    for split in ("tuned", "held_out"):
        normals = [
            r for r in reports
            if r.get("problems") == "normal" and ("held_out" if is_held_out(r["id"]) else "tuned") == split
        ]  # fmt: skip
        shuffled = normals[:]
        rng.shuffle(shuffled)
        for first, second in zip(normals, shuffled[1:] + shuffled[:1], strict=True):
            if first["id"] == second["id"]:
                continue
            pairs.append(
                {
                    "id": f"{first['id']}~{second['id']}",
                    "candidate": first["text"],
                    "reference": second["text"],
                    "expected": [],
                    "kind": "normal_pair",
                    "split": split,
                    "source": first["source"],
                    "note": "two different real reports of a normal study",
                }
            )
    return pairs


def build(directory: Path = REAL_DIR) -> list[dict[str, Any]]:
    """Every pair of the development set, in a stable order."""
    reports = load_reports(directory)
    records: list[dict[str, Any]] = []
    for report in reports:
        records.extend(edit_pairs(report))
        wording = wording_pair(report)
        if wording is not None:
            records.append(wording)
    records.extend(normal_pairs(reports))
    return records
