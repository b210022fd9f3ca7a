"""Finding-mention extraction: concepts, ConText assertion and modifiers, sentence by sentence.

The assertion algorithm follows ConText (Harkema et al. 2009) as used by the CheXpert labeler:
pre-triggers ("no", "possible") govern the concepts that follow them, post-triggers ("is not seen",
"cannot be excluded") govern the concepts before them, and a scope ends at a termination term
("but", "however", ";"), at another trigger, or after a bounded window. Pseudo-triggers ("no change
in") are matched longest-first and so hide the shorter trigger they contain. Lists keep one scope:
"No pneumothorax, effusion or consolidation." negates all three.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from .lexicon import LEXICON, Lexicon
from .model import Finding
from .rads import rads_categories
from .text import ANALYSED_SECTIONS, Sentence, Token, clean, split_sections, split_sentences, tokenize

# Measurement noise between readers is about 1-2 mm and 10-20%: smaller differences are not changes.
SIZE_REL_TOLERANCE = 0.2
SIZE_MIN_MM = 2.0
# Triggers reach at most this many items (phrases) away; NegEx-style windows keep hostile, very long
# sentences linear and stop a stray "no" from negating a finding half a paragraph later.
SCOPE_WINDOW = 12
# Copulas end a post-trigger's backward reach: in "effusion is present, pneumothorax is not seen" the
# "is" after "effusion" shows that "is not seen" belongs to the pneumothorax.
_COPULAS = frozenset({"is", "are", "was", "were", "has", "have", "appears", "appear", "remains", "remain"})
# Words that separate clauses for modifier attachment (not for negation scope: lists run across "and").
_CLAUSE_BREAKS = frozenset({"and", "but", "however", "with", "while", "whereas", "although", ";", ":"})


@dataclass
class _Item:
    """A matched phrase: token index range, character range and its (kind, value) meanings."""

    first: int
    last: int  # exclusive token index
    start: int
    end: int
    entries: tuple[tuple[str, Any], ...]
    kinds: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.kinds = frozenset(kind for kind, _ in self.entries)

    def value(self, kind: str) -> Any:
        for entry_kind, value in self.entries:
            if entry_kind == kind:
                return value
        return None


@dataclass
class _Mention:
    """Mutable working state for one concept mention while modifiers attach to it."""

    item: _Item
    concept: str
    forced_absent: bool
    assertion: str = "present"
    laterality: set[str] = field(default_factory=set)
    site: str | None = None
    severity: float | None = None
    severity_word: str | None = None
    size_mm: float | None = None
    prior_size_mm: float | None = None
    change: str | None = None
    start: int = 0
    end: int = 0
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)


def match_items(tokens: list[Token], lexicon: Lexicon = LEXICON) -> tuple[list[str], list[_Item]]:
    """Walk the tokens left to right, taking the longest lexicon phrase at each position.

    Returns the normalised token texts (for cue checks) and the matched items. Measurements and
    punctuation become items of kind ``size`` and ``punct``.
    """
    norm = [tok.text if tok.kind != "word" else lexicon.normalise(tok.text) for tok in tokens]
    items: list[_Item] = []
    index = 0
    count = len(tokens)
    while index < count:
        token = tokens[index]
        if token.kind == "size":
            items.append(_Item(index, index + 1, token.start, token.end, (("size", token.size_mm),)))
            index += 1
            continue
        matched = None
        for length in lexicon.lengths.get(norm[index], ()):
            if index + length <= count:
                entries = lexicon.table.get(tuple(norm[index : index + length]))
                if entries is not None:
                    matched = (length, entries)
                    break
        if matched:
            length, entries = matched
            items.append(_Item(index, index + length, token.start, tokens[index + length - 1].end, entries))
            index += length
            continue
        if token.kind == "punct":
            kind = "term" if token.text in (";", ":") else "punct"
            items.append(_Item(index, index + 1, token.start, token.end, ((kind, token.text),)))
        index += 1
    return norm, items


def _assertion(items: list[_Item], position: int, norm: list[str]) -> tuple[str, _Item | None]:
    """ConText assertion for the concept item at ``position`` and the trigger item that decided it."""
    # Pre-triggers: walk back to the nearest trigger; stop at a terminator or the window edge.
    for back in range(position - 1, max(-1, position - 1 - SCOPE_WINDOW), -1):
        kinds = items[back].kinds
        if "term" in kinds or "pseudo" in kinds or "neg_post" in kinds or "unc_post" in kinds:
            break
        if "neg_pre" in kinds:
            return "absent", items[back]
        if "unc_pre" in kinds or "unc_bi" in kinds:
            return "possible", items[back]
    # Post-triggers: walk forward; a copula outside any phrase hands the rest of the clause to the next
    # subject ("effusion is present, pneumothorax is not seen").
    for ahead in range(position + 1, min(len(items), position + 1 + SCOPE_WINDOW)):
        item = items[ahead]
        gap = norm[items[ahead - 1].last : item.first]
        if any(word in _COPULAS for word in gap):
            break
        kinds = item.kinds
        if "term" in kinds or "neg_pre" in kinds or "unc_pre" in kinds or "pseudo" in kinds:
            break
        if "neg_post" in kinds:
            return "absent", item
        if "unc_post" in kinds or ("unc_bi" in kinds and ahead == position + 1):
            return "possible", item
    return "present", None


def _clause_ids(items: list[_Item], norm: list[str]) -> list[int]:
    """Number the clauses so that modifiers attach within their clause ("left effusion and right PTX")."""
    ids = []
    clause = 0
    previous_last = 0
    for item in items:
        if any(word in _CLAUSE_BREAKS for word in norm[previous_last : item.first]):
            clause += 1
        if "term" in item.kinds:
            clause += 1
        ids.append(clause)
        previous_last = item.last
    return ids


def _is_post_positional(norm: list[str], first: int, lexicon: Lexicon) -> bool:
    """True when the words before a modifier group tie it to the preceding noun ("nodule in the ...")."""
    if first >= 1 and (norm[first - 1],) in lexicon.post_cues:
        return True
    return first >= 2 and (norm[first - 2], norm[first - 1]) in lexicon.post_cues


def _attach_target(
    group: list[int],
    items: list[_Item],
    clauses: list[int],
    concepts: list[int],
    norm: list[str],
    lexicon: Lexicon,
) -> int | None:
    """Pick the concept item a modifier group belongs to (index into ``items``)."""
    first_item, last_item = group[0], group[-1]
    clause = clauses[first_item]
    # Bisect to the neighbours within the window: a hostile sentence can hold 10^5 concepts.
    low = bisect_left(concepts, first_item - SCOPE_WINDOW)
    high = bisect_right(concepts, last_item + SCOPE_WINDOW)
    nearby = concepts[low:high]
    before = [c for c in nearby if c < first_item and clauses[c] == clause]
    after = [c for c in nearby if c > last_item and clauses[c] == clause]
    # A following concept counts as "next" only before the next comma: "large effusion, small PTX".
    after_same_segment = [
        c for c in after if not any(items[k].kinds & {"punct"} for k in range(last_item + 1, c))
    ]
    if _is_post_positional(norm, items[first_item].first, lexicon):
        order = (before[-1:], after_same_segment[:1], after[:1])
    else:
        order = (after_same_segment[:1], before[-1:], after[:1])
    for choice in order:
        if choice:
            return choice[0]
    # Coordinated modifiers with one noun: "right middle lobe and lower lobe pneumonia", "left 5th and 6th
    # rib fractures". A clause without a concept lends its modifiers to the next concept, unless a
    # comma or a terminator stands between them.
    following = [c for c in nearby if c > last_item]
    if following and not any(items[k].kinds & {"punct", "term"} for k in range(last_item + 1, following[0])):
        return following[0]
    return None


_MODIFIER_KINDS = frozenset({"lat", "site", "sev", "change", "size", "pseudo"})


def _prior_size(norm: list[str], first: int, lexicon: Lexicon) -> bool:
    """True for a measurement described as the prior value ("previously 5 mm", "from 5 mm")."""
    for width in (1, 2):
        if first >= width and tuple(norm[first - width : first]) in lexicon.prior_size_cues:
            return True
    return False


def extract_sentence(text: str, sentence: Sentence, lexicon: Lexicon = LEXICON) -> list[Finding]:
    """Extract the finding mentions of one sentence."""
    tokens = tokenize(text, sentence.start, sentence.end)
    if not tokens:
        return []
    norm, items = match_items(tokens, lexicon)
    concept_positions = [i for i, item in enumerate(items) if item.kinds & {"concept", "normal"}]
    if not concept_positions:
        return _rads_findings(text, sentence, lexicon)
    mentions = {
        position: _new_mention(items, position, tokens, norm, lexicon) for position in concept_positions
    }
    _attach_modifiers(items, norm, concept_positions, mentions, lexicon)
    # One string per sentence, shared by its mentions (a hostile one-sentence report has 10^5 of them).
    sentence_text = text[sentence.start : sentence.end]
    findings = [_finding(text, sentence, sentence_text, mention, lexicon) for mention in mentions.values()]
    return findings + _rads_findings(text, sentence, lexicon)


def _new_mention(
    items: list[_Item], position: int, tokens: list[Token], norm: list[str], lexicon: Lexicon
) -> _Mention:
    """A concept mention with its assertion and the modifiers spelt inside its own phrase."""
    item = items[position]
    forced = "normal" in item.kinds
    concept = item.value("normal") if forced else item.value("concept")
    mention = _Mention(item, concept, forced, start=item.start, end=item.end)
    if forced:
        mention.assertion = "absent"
    else:
        mention.assertion, trigger = _assertion(items, position, norm)
        if trigger is not None:
            # Quote the trigger too, so an explanation reads "No pneumothorax", not "pneumothorax".
            mention.spans["trigger"] = (trigger.start, trigger.end)
            mention.start = min(mention.start, trigger.start)
            mention.end = max(mention.end, trigger.end)
    # Modifiers spelt inside the concept phrase ("heart is mildly enlarged", "healed left rib fracture").
    for offset, word in enumerate(norm[item.first : item.last]):
        token = tokens[item.first + offset]
        for kind, value in lexicon.table.get((word,), ()):
            # Only adverbs: in "small vessel ischemic change" the word "small" is not a severity.
            if kind == "sev" and word.endswith("ly"):
                mention.severity, mention.severity_word = value, word
                mention.spans["severity"] = (token.start, token.end)
            elif kind == "lat":
                mention.laterality.add(value)
                mention.spans["laterality"] = (token.start, token.end)
    return mention


def _attach_modifiers(
    items: list[_Item],
    norm: list[str],
    concept_positions: list[int],
    mentions: dict[int, _Mention],
    lexicon: Lexicon,
) -> None:
    """Give each group of modifier phrases to its noun; spread change words said of several nouns."""
    clauses = _clause_ids(items, norm)
    # Group adjacent modifier items so "in the right lower lobe" is judged by the words before "right".
    groups: list[list[int]] = []
    for index, item in enumerate(items):
        if not item.kinds & _MODIFIER_KINDS or item.kinds & {"concept", "normal"}:
            continue
        if groups and groups[-1][-1] == index - 1 and items[index - 1].last == item.first:
            groups[-1].append(index)
        else:
            groups.append([index])
    orphans: list[_Item] = []
    predicates: list[tuple[int, _Item]] = []
    for group in groups:
        target = _attach_target(group, items, clauses, concept_positions, norm, lexicon)
        if target is None:
            orphans.extend(items[i] for i in group if "change" in items[i].kinds)
            continue
        mention = mentions[target]
        for index in group:
            _apply_modifier(mention, items[index], norm, lexicon)
        first_token = items[group[0]].first
        if target < group[0] and first_token and norm[first_token - 1] in _COPULAS:
            predicates.extend((target, items[i]) for i in group if "change" in items[i].kinds)
    _spread_predicate_changes(predicates, mentions)
    _spread_orphan_changes(orphans, mentions.values())


def _finding(
    text: str, sentence: Sentence, sentence_text: str, mention: _Mention, lexicon: Lexicon
) -> Finding:
    """The frozen :class:`Finding` of a finished mention."""
    concept = lexicon.concepts[mention.concept]
    if mention.change is None and mention.size_mm is not None and mention.prior_size_mm is not None:
        # "15 mm, previously 9 mm" reports a change even without a change word.
        mention.change = size_change(mention.prior_size_mm, mention.size_mm)
    if mention.change == "resolved":
        mention.assertion = "absent"
    laterality = None
    if concept.lateral and mention.laterality:
        laterality = "bilateral" if len(mention.laterality) > 1 else next(iter(mention.laterality))
    return Finding(
        concept=concept.id,
        name=concept.name,
        assertion=mention.assertion,
        laterality=laterality,
        site=mention.site,
        severity=mention.severity_word,
        severity_rank=mention.severity,
        size_mm=mention.size_mm,
        change=mention.change,
        section=sentence.section,
        sentence=sentence_text,
        span=(sentence.start, sentence.end),
        mention_span=(mention.start, mention.end),
        words=text[mention.start : mention.end],
        laterality_span=mention.spans.get("laterality") if laterality else None,
        site_span=mention.spans.get("site"),
        severity_span=mention.spans.get("severity"),
        change_span=mention.spans.get("change"),
        trigger_span=mention.spans.get("trigger"),
        concept_span=(mention.item.start, mention.item.end),
    )


_SIDE_RE = re.compile(r"\b(left|right|bilateral)\b", re.IGNORECASE)


def _rads_findings(text: str, sentence: Sentence, lexicon: Lexicon) -> list[Finding]:
    """Assessment categories of the sentence ("Left breast: BI-RADS 4") as graded findings."""
    if "rads" not in text[sentence.start : sentence.end].lower():
        return []
    sentence_text = text[sentence.start : sentence.end]
    sides = {m.group(1).lower() for m in _SIDE_RE.finditer(sentence_text)}
    findings = []
    for concept_id, rank, words, span in rads_categories(text, sentence.start, sentence.end):
        concept = lexicon.concepts[concept_id]
        side = next(iter(sides)) if concept.lateral and len(sides) == 1 else None
        findings.append(
            Finding(
                concept=concept_id,
                name=concept.name,
                assertion="present",
                laterality=side,
                site=None,
                severity=words,
                severity_rank=rank,
                size_mm=None,
                change=None,
                section=sentence.section,
                sentence=sentence_text,
                span=(sentence.start, sentence.end),
                mention_span=span,
                words=words,
                severity_span=span,
            )
        )
    return findings


def _spread_predicate_changes(predicates: list[tuple[int, _Item]], mentions: dict[int, _Mention]) -> None:
    """A change word predicated of a list of subjects dates each of them.

    In "Biapical scarring and pleural thickening appears stable" the clause break at "and" gives
    "stable" to the thickening only; the copula before it ("appears", "is", "remain") says it is said
    of everything named before it in the sentence that carries no change word of its own.
    """
    values = {item.value("change") for _, item in predicates} - {None}
    if len(values) != 1:
        return
    value = values.pop()
    last_subject = max(target for target, _ in predicates)
    item = predicates[0][1]
    for position, mention in mentions.items():
        if position >= last_subject or mention.change is not None:
            continue
        if mention.assertion != "absent" and not mention.forced_absent:
            mention.change = value
            mention.spans["change"] = (item.start, item.end)


def _spread_orphan_changes(orphans: list[_Item], mentions: Iterable[_Mention]) -> None:
    """A change word that belongs to no noun of its clause describes the sentence's findings.

    "Small right pleural effusion which is new": "which" ends the clause, yet "new" still dates the
    effusion. Change words count anywhere in the sentence, so an unattached one goes to every mention
    that has none of its own (and is not negated: "no effusion, new" says nothing).
    """
    values = {item.value("change") for item in orphans} - {None}
    if len(values) != 1:
        return
    value = values.pop()
    for mention in mentions:
        if mention.change is None and mention.assertion != "absent" and not mention.forced_absent:
            mention.change = value
            mention.spans["change"] = (orphans[0].start, orphans[0].end)


def size_change(before: float, after: float) -> str:
    """Classify a change in size with the tolerance used for size discrepancies (>20% and >= 2 mm)."""
    diff = after - before
    if abs(diff) > SIZE_REL_TOLERANCE * max(before, after) and abs(diff) >= SIZE_MIN_MM:
        return "increased" if diff > 0 else "decreased"
    return "stable"


def _apply_modifier(mention: _Mention, item: _Item, norm: list[str], lexicon: Lexicon) -> None:
    """Record one modifier item on a mention and widen the mention's quoted words to include it."""
    used = False
    where = (item.start, item.end)
    for kind, value in item.entries:
        if kind == "lat":
            mention.laterality.add(value)
            if value == "bilateral":
                mention.laterality.update({"left", "right"})
            mention.spans["laterality"] = where
            used = True
        elif kind == "site" and (mention.site is None or mention.site in lexicon.broad_sites):
            mention.site = value
            mention.spans["site"] = where
            used = True
        elif kind == "sev" and mention.severity is None:
            mention.severity = value
            mention.severity_word = " ".join(norm[item.first : item.last])
            mention.spans["severity"] = where
            used = True
        elif kind in ("change", "pseudo") and value and mention.change in (None, "stable"):
            # "no change in the nodule" is a pseudo-negation that also reports stability. An explicit
            # direction beats a stability word: "redemonstrated pneumothorax, slightly smaller" is smaller.
            if mention.change is None or value != "stable":
                mention.change = value
                mention.spans["change"] = where
            used = True
        elif kind == "size" and _prior_size(norm, item.first, lexicon):
            mention.prior_size_mm = value
            used = True
        elif kind == "size":
            mention.size_mm = value if mention.size_mm is None else max(mention.size_mm, value)
            mention.spans["severity"] = where
            used = True
    if used:
        mention.start = min(mention.start, item.start)
        mention.end = max(mention.end, item.end)


@lru_cache(maxsize=512)
def analyse(text: str) -> tuple[Finding, ...]:
    """Return every finding mention in a report, in reading order.

    Cached per text: a signed report compared against several AI drafts (re-inference runs) is parsed
    once. Only findings, impression and headerless text are read.
    """
    cleaned = clean(text)
    changed = cleaned != text
    findings: list[Finding] = []
    for section in split_sections(cleaned):
        if section.name not in ANALYSED_SECTIONS:
            continue
        for sentence in split_sentences(cleaned, section):
            found = extract_sentence(cleaned, sentence)
            if changed and found:
                # Offsets are shared with the original; quote the original characters, not the cleaned ones.
                original = text[sentence.start : sentence.end]
                found = [
                    replace(f, sentence=original, words=text[f.mention_span[0] : f.mention_span[1]])
                    for f in found
                ]
            findings.extend(found)
    return tuple(findings)
