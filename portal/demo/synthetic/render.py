"""Report text: the AI's neutral template and the radiologists' own styles.

The two renderers are deliberately different. The AI draft is one fixed template (sizes in mm, "No X."
negatives, "Possible" hedges, one sentence per line) so that a discrepancy in it comes only from its
inputs. Signed reports vary wording per radiologist (abbreviations, cm, "There is no", numbered
impressions, header case) so that the discrepancy engine has to see through style to content.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .catalog import Catalog, Pattern, SpecialtyCatalog, load_catalog
from .models import Finding, ReportStyle

# Words that mark a hedged finding in either text; the discrepancy engine's certainty check and the
# tests look for these.
HEDGE_CUES = ("possible", "cannot exclude", "cannot be excluded", "suspicious for", "questionable")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _article(next_word: str) -> str:
    """'a' or 'an' as spoken: 'an 8 mm', 'an 11 mm', 'a 1.2 cm', 'an SDH', 'a PTX'."""
    head = next_word.split(" ", 1)[0]
    if head[:1].isdigit():
        integer = head.split(".")[0]
        return "an" if integer.startswith("8") or integer in ("11", "18") else "a"
    if head.isupper():
        # An abbreviation is read letter by letter: 'an SDH', 'an NME', but 'a PTX'.
        return "an" if head[:1] in "AEFHILMNORSX" else "a"
    return "an" if head[:1].lower() in "aeiou" else "a"


def _is_plural(finding: Finding, pattern: Pattern) -> bool:
    """Whether the finding takes 'are': a plural noun, or bilateral count nouns ("effusions")."""
    return pattern.count == "plural" or (finding.laterality == "bilateral" and pattern.count == "count")


# --------------------------------------------------------------------------------------------- AI draft


def _ai_core(f: Mapping[str, Any], pattern: Pattern, *, with_severity: bool = True) -> str:
    words = []
    if with_severity and f["severity"]:
        words.append(f["severity"])
    if f["laterality"] and not f["location"]:
        words.append(f["laterality"])
    bilateral_count = f["laterality"] == "bilateral" and pattern.count == "count"
    words.append(pattern.plural if bilateral_count else f["display"])
    text = " ".join(words)
    if f["location"]:
        text += f" {pattern.location_prep} {f['location']}"
    return text


def _ai_finding_sentence(f: Mapping[str, Any], pattern: Pattern) -> str:
    if f["change"] == "resolved":
        return f"Previously seen {_ai_core(f, pattern, with_severity=False)} has resolved."
    lead = []
    if f["certainty"] == "possible":
        lead.append("possible")
    if f["change"] == "new":
        lead.append("new")
    text = " ".join([*lead, _ai_core(f, pattern)])
    if f["size_mm"] is not None:
        text += f", measuring {f['size_mm']} mm"
    if f["change"] in ("increased", "decreased"):
        text += f", {f['change']} compared with the prior study"
    elif f["change"] == "stable":
        text += ", unchanged compared with the prior study"
    return _cap(text) + "."


def _ai_impression_item(f: Mapping[str, Any], pattern: Pattern) -> str:
    if f["change"] == "resolved":
        return f"Resolved {_ai_core(f, pattern, with_severity=False)}."
    lead = []
    if f["certainty"] == "possible":
        lead.append("possible")
    if f["change"]:
        lead.append(f["change"])
    return _cap(" ".join([*lead, _ai_core(f, pattern)])) + "."


def render_ai_draft(ai_inputs: Mapping[str, Any], catalog: Catalog | None = None) -> str:
    """The drafting model's report for these inputs: a pure function of ``ai_inputs``.

    ``ai_inputs`` needs ``specialty``, ``findings`` (dicts as :meth:`Finding.to_dict` makes them) and
    ``negatives`` (``[{"concept": ..., "display": ...}]``: checked and absent). Sections are
    ``FINDINGS:`` and ``IMPRESSION:``; one finding per line; sizes in mm; hedges as "Possible";
    changes as "new/increased/decreased/unchanged compared with the prior study".
    """
    catalog = catalog or load_catalog()
    spec = catalog.specialty(ai_inputs["specialty"])
    findings = list(ai_inputs["findings"])
    lines = [_ai_finding_sentence(f, catalog.pattern(f["concept"])) for f in findings]
    lines += [f"No {n['display']}." for n in ai_inputs["negatives"]]
    if not lines:
        lines.append("No significant abnormality.")
    items = [_ai_impression_item(f, catalog.pattern(f["concept"])) for f in findings]
    if all(f["change"] == "resolved" for f in findings):
        items.append(spec.normal_impressions[0])
    impression = "\n".join(f"{i}. {item}" for i, item in enumerate(items, start=1))
    return "FINDINGS:\n" + "\n".join(lines) + "\n\nIMPRESSION:\n" + impression + "\n"


# ------------------------------------------------------------------------------------- signed report


@dataclass(frozen=True, slots=True)
class PriorContext:
    """What a reader knows of the prior: its date, its description and its findings' sizes."""

    date: str  # ISO date
    description: str
    modality: str
    sizes_mm: Mapping[str, int]  # concept -> size on the prior


@dataclass(frozen=True, slots=True)
class CriticalCall:
    """Who was phoned about a critical result, and when (``HH:MM``, ISO date)."""

    physician_last_name: str
    time: str
    date: str


def format_date(iso_date: str, style: ReportStyle) -> str:
    """A date as this reader writes it: ``2025-03-04`` or ``03/04/2025``."""
    if style.date_format == "us":
        year, month, day = iso_date.split("-")
        return f"{month}/{day}/{year}"
    return iso_date


def _size(size_mm: int, style: ReportStyle) -> str:
    if style.size_unit == "cm":
        return f"{size_mm / 10:.1f} cm"
    return f"{size_mm} mm"


class _SignedWriter:
    """Words one signed report; holds the study's rng and the reader's style so helpers stay short."""

    def __init__(self, rng: random.Random, style: ReportStyle, spec: SpecialtyCatalog) -> None:
        self.rng = rng
        self.style = style
        self.spec = spec

    def term(self, pattern: Pattern, *, plural: bool) -> str:
        """The name this reader uses this time: abbreviation, synonym or the display name."""
        if self.style.uses_abbreviations and pattern.abbreviation and self.rng.random() < 0.6:
            return pattern.abbreviation
        if plural:
            return pattern.plural if pattern.count == "count" else pattern.display
        if pattern.synonyms and self.rng.random() < 0.3:
            return self.rng.choice(pattern.synonyms)
        return pattern.display

    def core(self, f: Finding, pattern: Pattern, *, with_severity: bool = True) -> str:
        words = []
        if with_severity and f.severity:
            words.append(f.severity)
        if f.laterality and not f.location:
            words.append(f.laterality)
        words.append(self.term(pattern, plural=f.laterality == "bilateral" and pattern.count == "count"))
        text = " ".join(words)
        if f.location:
            text += f" {pattern.location_prep} {f.location}"
        return text

    def change_clause(self, f: Finding, prior: PriorContext | None) -> str:
        if prior is None or f.change not in ("increased", "decreased", "stable"):
            return ""
        date = format_date(prior.date, self.style)
        if f.change == "stable":
            return self.rng.choice(
                (f", unchanged since {date}", ", stable compared with the prior examination", ", unchanged")
            )
        options = [f", {f.change} since {date}", f", {f.change} compared with the prior examination"]
        prior_size = prior.sizes_mm.get(f.concept)
        if prior_size is not None and f.size_mm is not None:
            options.append(f", {f.change} from {_size(prior_size, self.style)} on {date}")
        return self.rng.choice(options)

    def with_article(self, phrase: str, pattern: Pattern, plural: bool) -> str:
        if plural or pattern.count != "count":
            return phrase
        return f"{_article(phrase)} {phrase}"

    def finding_sentence(self, f: Finding, pattern: Pattern, prior: PriorContext | None) -> str:
        if f.change == "resolved":
            core = self.core(f, pattern, with_severity=False)
            return self.rng.choice(
                (
                    f"Previously seen {core} has resolved.",
                    f"Interval resolution of the previously seen {core}.",
                )
            )
        plural = _is_plural(f, pattern)
        core = self.core(f, pattern)
        new = "new " if f.change == "new" else ""
        size = _size(f.size_mm, self.style) if f.size_mm is not None else ""
        change = self.change_clause(f, prior)
        # Size goes before the noun ("8 mm nodule") or after it (", measuring 8 mm") by reader.
        prefixed = f"{new}{size} {core}" if size else f"{new}{core}"
        suffixed = f"{new}{core}, measuring {size}" if size else f"{new}{core}"
        if f.certainty == "possible":
            hedge = self.style.hedge_phrase
            if hedge == "cannot exclude":
                return f"Cannot exclude {self.with_article(prefixed, pattern, plural)}{change}."
            if hedge == "suspicious for":
                return f"Findings suspicious for {self.with_article(prefixed, pattern, plural)}{change}."
            return f"{_cap(hedge)} {prefixed}{change}."
        if self.style.verbosity == "terse":
            return f"{_cap(prefixed)}{change}."
        if self.rng.random() < 0.5:
            verb = "are" if plural else "is"
            return f"There {verb} {self.with_article(suffixed, pattern, plural)}{change}."
        verb = "are noted" if plural else "is noted"
        return f"{_cap(self.with_article(prefixed, pattern, plural))} {verb}{change}."

    def negative_sentences(self, negatives: Sequence[Pattern]) -> list[str]:
        phrases: list[tuple[str, Pattern]] = []
        for pattern in negatives:
            phrase = pattern.negative_phrase
            if self.style.uses_abbreviations and pattern.abbreviation and self.rng.random() < 0.5:
                phrase = pattern.abbreviation
            phrases.append((phrase, pattern))
        negation = self.style.negation
        if negation == "no" and self.style.verbosity == "terse" and len(phrases) >= 2:
            # Terse readers fold negatives together: "No pneumothorax or pleural effusion."
            sentences = []
            for i in range(0, len(phrases), 2):
                pair = " or ".join(phrase for phrase, _ in phrases[i : i + 2])
                sentences.append(f"No {pair}.")
            return sentences
        sentences = []
        for phrase, pattern in phrases:
            if negation == "there_is_no":
                verb = "are" if pattern.count == "plural" else "is"
                sentences.append(f"There {verb} no {phrase}.")
            elif negation == "no_evidence_of":
                sentences.append(f"No evidence of {phrase}.")
            else:
                sentences.append(f"No {phrase}.")
        return sentences

    def impression_item(self, f: Finding, pattern: Pattern) -> str:
        if f.change == "resolved":
            core = self.core(f, pattern, with_severity=False)
            return self.rng.choice((f"Resolved {core}.", f"Interval resolution of {core}."))
        plural = _is_plural(f, pattern)
        change_word = {"stable": self.rng.choice(("stable", "unchanged"))}.get(f.change or "", f.change or "")
        base = " ".join(w for w in (change_word, self.core(f, pattern)) if w)
        if f.size_mm is not None and self.style.verbosity == "verbose":
            base += f", {_size(f.size_mm, self.style)}"
        if f.certainty == "definite":
            return _cap(base) + "."
        hedge = self.style.hedge_phrase
        if hedge == "cannot exclude":
            return f"Cannot exclude {self.with_article(base, pattern, plural)}."
        if hedge == "suspicious for":
            return f"Findings suspicious for {self.with_article(base, pattern, plural)}."
        return f"{_cap(hedge)} {base}."


def render_signed_sections(
    rng: random.Random,
    *,
    style: ReportStyle,
    spec: SpecialtyCatalog,
    catalog: Catalog,
    modality: str,
    body_part: str,
    indication: str,
    findings: Sequence[Finding],
    negatives: Sequence[Pattern],
    prior: PriorContext | None,
    critical_call: CriticalCall | None,
) -> dict[str, str]:
    """The four sections of the signed report, worded in the reader's style from the true findings."""
    writer = _SignedWriter(rng, style, spec)
    sentences = [writer.finding_sentence(f, catalog.pattern(f.concept), prior) for f in findings]
    negative_sentences = writer.negative_sentences(negatives)
    if style.verbosity == "verbose":
        affected = {catalog.pattern(f.concept).region for f in findings}
        sentences += [
            s.text
            for s in spec.normal_statements
            if s.applies_to(modality, body_part) and s.region not in affected
        ]
        sentences += negative_sentences
    else:
        sentences += negative_sentences
        if findings and rng.random() < 0.5:
            sentences.append("Otherwise unremarkable.")
    if not sentences:
        sentences.append("No acute abnormality.")

    items = [writer.impression_item(f, catalog.pattern(f.concept)) for f in findings]
    if all(f.change == "resolved" for f in findings):
        items.append(rng.choice(spec.normal_impressions))
    if style.numbered_impressions:
        impression = "\n".join(f"{i}. {item}" for i, item in enumerate(items, start=1))
    else:
        impression = " ".join(items)
    if critical_call is not None:
        date = format_date(critical_call.date, style)
        impression += (
            f"\nCritical result communicated to Dr. {critical_call.physician_last_name} by telephone"
            f" at {critical_call.time} on {date}."
        )

    if prior is None:
        comparison = rng.choice(("None.", "No prior studies available."))
    else:
        date = format_date(prior.date, style)
        comparison = rng.choice((f"{prior.description} dated {date}.", f"{prior.modality} {date}."))
    return {
        "indication": indication,
        "comparison": comparison,
        "findings": " ".join(sentences),
        "impression": impression,
    }


def header(name: str, style: ReportStyle) -> str:
    """A section header as this reader types it: ``FINDINGS:`` or ``Findings:``."""
    return (name.upper() if style.header_case == "upper" else name.title()) + ":"


def render_signed_text(sections: Mapping[str, str], style: ReportStyle) -> str:
    """The full signed report: indication and comparison inline, findings and impression as blocks."""
    return (
        f"{header(style.indication_header, style)} {sections['indication']}\n"
        f"{header('comparison', style)} {sections['comparison']}\n"
        f"\n{header('findings', style)}\n{sections['findings']}\n"
        f"\n{header('impression', style)}\n{sections['impression']}\n"
    )
