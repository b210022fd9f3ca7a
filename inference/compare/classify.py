"""Classify aligned findings into discrepancies, with exact marks on the words that differ.

Each aligned pair (or lone finding) is checked for the discrepancy categories; the result then obeys
"one finding, one story": a finding the engine paired across the reports is never also reported as
missing or invented, and one finding is never listed twice under two names (cyst / breast cyst).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .align import Group
from .extract import SIZE_MIN_MM, SIZE_REL_TOLERANCE
from .lexicon import LEXICON, Lexicon
from .model import CATEGORIES, MINOR, SIGNIFICANT, Discrepancy, Finding
from .rads import RADS_CONCEPTS

REAL_CHANGES = frozenset({"new", "increased", "decreased", "resolved"})
_QUOTE_LIMIT = 90
Span = tuple[int, int]


def _quote(mention: Finding | None) -> str:
    if mention is None:
        return ""
    words = " ".join(mention.words.split())
    if len(words) > _QUOTE_LIMIT:
        words = words[: _QUOTE_LIMIT - 3].rstrip() + "..."
    return f'"{words}"'


def _side(laterality: str) -> str:
    return "on both sides" if laterality == "bilateral" else f"on the {laterality}"


_CHANGE_WORDS = {
    "new": "new",
    "increased": "increased",
    "decreased": "decreased",
    "stable": "unchanged",
    "resolved": "resolved",
}


class _Builder:
    """Collects discrepancies for one comparison, deciding significance from the lexicon."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        self.items: list[Discrepancy] = []

    def add(
        self,
        category: str,
        concept: str,
        significant: bool,
        cand: Finding | None,
        ref: Finding | None,
        explanation: str,
        detail: str = "",
        marks: tuple[tuple[Span, ...], tuple[Span, ...]] | None = None,
    ) -> None:
        if marks is None:
            marks = ((cand.mention_span,) if cand else (), (ref.mention_span,) if ref else ())
        self.items.append(
            Discrepancy(
                category=category,
                significance=SIGNIFICANT if significant else MINOR,
                finding=self.lexicon.concepts[concept].name,
                candidate_text=cand.sentence if cand else None,
                candidate_span=cand.span if cand else None,
                reference_text=ref.sentence if ref else None,
                reference_span=ref.span if ref else None,
                explanation=explanation,
                concept=concept,
                detail=detail,
                candidate_marks=marks[0],
                reference_marks=marks[1],
            )
        )


def _marks(group: Group | None, attribute: str, keep: Callable[[Finding], bool]) -> tuple[Span, ...]:
    """The exact words behind ``attribute`` in every kept mention of a group (each repeat is marked).

    ``attribute`` is "mention" (the finding's words with their modifiers and trigger) or one of
    "laterality", "site", "severity", "change", "trigger"; a mention without that word falls back to
    its finding words, so every mark lands on text the reader can see.
    """
    if group is None:
        return ()
    spans = set()
    for mention in group.mentions:
        if keep(mention):
            span = getattr(mention, f"{attribute}_span", None) if attribute != "mention" else None
            spans.add(span or mention.mention_span)
    return tuple(sorted(spans))


def classify(
    pairs: list[tuple[Group | None, Group | None]], lexicon: Lexicon = LEXICON
) -> tuple[Discrepancy, ...]:
    """Turn aligned pairs into discrepancies, sorted significant first, then by category and position."""
    builder = _Builder(lexicon)
    for cand, ref in pairs:
        if cand is not None:
            # The draft at odds with itself is its own error; the finding is still compared with the
            # signed report as the draft finally states it (the impression decides), as in ``ic08``.
            _contradiction(builder, cand, ref)
        if cand is not None and ref is not None:
            _classify_pair(builder, cand, ref)
        elif cand is not None and cand.positive:
            _lone(builder, cand, "false_finding")
        elif ref is not None and ref.positive:
            # A missed finding also loses its change from the prior; that is one error, not two.
            _lone(builder, ref, "missed_finding")

    order = {category: index for index, category in enumerate(CATEGORIES)}
    return tuple(
        sorted(
            _one_name_per_finding(builder.items, lexicon),
            key=lambda d: (
                d.significance != SIGNIFICANT,
                order[d.category],
                (d.reference_span or d.candidate_span or (0, 0))[0],
                d.finding,
            ),
        )
    )


#: Words that make a negation narrower than the finding asserted beside it: "no new effusion" or "no
#: large effusion" next to "small effusion" is not a contradiction.
_NARROWING = frozenset(
    "new large significant acute further residual additional other definite definitive focal displaced "
    "gross obvious suspicious sizable appreciable pathologic abnormal visible apparent convincing "
    "increasing worsening enlarging superimposed underlying discrete dominant diffuse pathological stable "
    "laryngeal".split()
)


def _contradiction(builder: _Builder, group: Group, ref: Group | None) -> None:
    """Flag an AI draft that asserts and negates one finding ("New mild hydrocephalus" + "There is no
    hydrocephalus"): the reader cannot tell which statement the model means, so it is significant.
    The signed report's own statement about the finding (or its silence) is quoted beside it."""
    positive = [m for m in group.mentions if m.assertion == "present"]
    # Only an explicit negation of the very same finding (same side, same site) contradicts: a normal
    # phrase ("lungs are clear") beside "minimal opacities" is ordinary radiology shorthand.
    pairs = [
        (said, denied)
        for denied in group.mentions
        if denied.assertion == "absent" and _plain_negation(denied)
        for said in positive
        if (said.laterality, said.site) == (denied.laterality, denied.site) and _as_broad(denied, said)
    ]
    if not pairs:
        return
    said, denied = pairs[0]
    where = (said.laterality, said.site)
    # Every repeat on either side of the contradiction is marked (findings and impression).
    positive = [m for m in positive if (m.laterality, m.site) == where]
    negated = [
        m
        for m in group.mentions
        if m.assertion == "absent"
        and _plain_negation(m)
        and (m.laterality, m.site) == where
        and _as_broad(m, said)
    ]
    name = builder.lexicon.concepts[group.concept].name
    text = (
        f"The AI draft both reports {_quote(said)} and states {_quote(denied)}; "
        f"it contradicts itself about the {name}"
    )
    signed: Finding | None = None
    if ref is None:
        text += "; the signed report does not mention it."
    else:
        signed = ref.pick(lambda m: m.assertion == ref.assertion)
        verdict = {
            "present": "reports it",
            "possible": "raises it as possible",
            "absent": "states it is absent",
        }
        text += f"; the signed report {verdict[ref.assertion]} ({_quote(signed)})."
    builder.add(
        "internal_contradiction",
        group.concept,
        True,
        said,
        signed,
        text,
        marks=(
            tuple(sorted({m.mention_span for m in positive + negated})),
            _marks(ref, "mention", lambda m: m.assertion == ref.assertion) if ref else (),
        ),
    )


def _plain_negation(mention: Finding) -> bool:
    if mention.trigger_span is None or mention.change == "resolved":
        return False
    words = set(mention.words.lower().replace(",", " ").split())
    return not (_NARROWING & words) and not {"resolution", "resolved", "comparison", "clear"} & words


#: Words that qualify nothing: "There is no evidence of an effusion" denies the effusion itself.
_FILLER = frozenset("a an any the there is are was were of evidence seen definite identified".split())
_SEPARATORS = re.compile(r"[,;/]|\b(?:or|and|nor)\b", re.IGNORECASE)


def _as_broad(denied: Finding, said: Finding) -> bool:
    """True unless the denial names a narrower thing than the statement it would contradict.

    The words just before the denied concept (after its trigger and any list separator) qualify it:
    "No osseous Bankart lesion" or "no ... extraaxial mass lesion" beside "lesion" or "intrasellar mass
    lesion" deny another lesion, not the one stated. A qualifier the statement shares ("No left hip
    fracture" beside "Left hip fracture") narrows nothing.
    """
    if denied.trigger_span is None or denied.concept_span is None:
        return True
    start, end = denied.trigger_span[1], denied.concept_span[0]
    if end <= start:
        return True
    before = denied.sentence[start - denied.span[0] : end - denied.span[0]]
    qualifier = _SEPARATORS.split(before)[-1]
    words = {w for w in re.findall(r"[a-z]+", qualifier.lower()) if w not in _FILLER}
    return words <= set(re.findall(r"[a-z]+", said.words.lower()))


def _one_name_per_finding(items: list[Discrepancy], lexicon: Lexicon) -> list[Discrepancy]:
    """Keep one discrepancy per finding and category: "cyst" and "breast cyst" on the same marks are one.

    Two discrepancies of one category whose concepts are the same or parent and child, and whose marks
    overlap on either side (or that grade the same attribute), describe one finding under two names;
    the narrower name is kept.
    """
    kept: list[Discrepancy] = []
    for item in items:
        twin = next((k for k in kept if _same_story(k, item, lexicon)), None)
        if twin is None:
            kept.append(item)
        elif lexicon.is_ancestor(twin.concept, item.concept):
            kept[kept.index(twin)] = item
    return kept


def _same_story(a: Discrepancy, b: Discrepancy, lexicon: Lexicon) -> bool:
    if a.category != b.category or not (
        lexicon.is_ancestor(a.concept, b.concept) or lexicon.is_ancestor(b.concept, a.concept)
    ):
        return False
    if a.category in _GRADED and a.detail == b.detail:
        # A graded pair names one finding on both sides; the same grade under two names is one story.
        return True
    return _overlap(a.candidate_marks, b.candidate_marks) or _overlap(a.reference_marks, b.reference_marks)


_GRADED = frozenset({"location", "severity", "certainty", "comparison_added", "comparison_omitted"})


def _overlap(first: tuple[Span, ...], second: tuple[Span, ...]) -> bool:
    # Same sentence counts as overlapping: "cyst in the right breast" and "right breast cyst" share it.
    return any(a[0] < b[1] and b[0] < a[1] for a in first for b in second)


def _positive(mention: Finding) -> bool:
    return mention.assertion != "absent"


def _absent(mention: Finding) -> bool:
    return mention.assertion == "absent"


def _lone(builder: _Builder, group: Group, category: str) -> None:
    concept = builder.lexicon.concepts[group.concept]
    mention = group.pick(lambda m: m.assertion != "absent")
    hedged = group.assertion == "possible"
    # A category left out entirely is a gap in the report's form, not a finding missed: minor.
    significant = (
        concept.critical or (not concept.incidental and not hedged)
    ) and group.concept not in RADS_CONCEPTS
    name = concept.name
    if category == "false_finding":
        text = (
            f"The AI draft reports {_quote(mention)} ({name}); the signed report does not mention it."
            if not hedged
            else f"The AI draft raises a possible {name} ({_quote(mention)}); "
            "the signed report does not mention it."
        )
        marks = (_marks(group, "mention", _positive), ())
        builder.add(category, group.concept, significant, mention, None, text, marks=marks)
    else:
        text = (
            f"The signed report describes {_quote(mention)} ({name}); the AI draft does not mention it."
            if not hedged
            else f"The signed report raises a possible {name} ({_quote(mention)}); "
            "the AI draft does not mention it."
        )
        marks = ((), _marks(group, "mention", _positive))
        builder.add(category, group.concept, significant, None, mention, text, marks=marks)


def _classify_pair(builder: _Builder, cand: Group, ref: Group) -> None:
    lexicon = builder.lexicon
    # Related concepts paired by align(): name the finding in the signed report's terms.
    concept_id = ref.concept
    concept = lexicon.concepts[concept_id]
    name = concept.name
    critical = concept.critical
    c_assert, r_assert = cand.assertion, ref.assertion

    if c_assert != r_assert and "possible" in (c_assert, r_assert):
        c_m = cand.pick(lambda m: m.assertion == c_assert)
        r_m = ref.pick(lambda m: m.assertion == r_assert)
        wording = {"present": "as definite", "possible": "as only possible", "absent": "as absent"}
        builder.add(
            "certainty",
            concept_id,
            critical,
            c_m,
            r_m,
            f"The AI draft reports the {name} {wording[c_assert]} ({_quote(c_m)}); "
            f"the signed report reports it {wording[r_assert]} ({_quote(r_m)}).",
            # The hedge (or negation) is the word that differs; a definite side marks its finding.
            marks=(
                _marks(cand, "trigger", lambda m: m.assertion == c_assert),
                _marks(ref, "trigger", lambda m: m.assertion == r_assert),
            ),
        )
    elif {c_assert, r_assert} == {"present", "absent"}:
        _present_against_absent(builder, concept_id, cand, ref)
        return

    if cand.positive and ref.positive:
        _location(builder, concept_id, cand, ref)
        _severity(builder, concept_id, cand, ref)
    if cand.positive == ref.positive:
        _comparison(builder, cand, ref)


def _present_against_absent(builder: _Builder, concept_id: str, cand: Group, ref: Group) -> None:
    """One report states the finding, the other states it is absent: a false or a missed finding."""
    concept = builder.lexicon.concepts[concept_id]
    c_m = cand.pick(lambda m: m.assertion == cand.assertion)
    r_m = ref.pick(lambda m: m.assertion == ref.assertion)
    if cand.assertion == "present":
        category = "false_finding"
        text = f"The AI draft reports {_quote(c_m)}, "
        text += f"but the signed report states there is no {concept.name} ({_quote(r_m)})."
    else:
        category = "missed_finding"
        text = (
            f"The signed report describes {_quote(r_m)}, but the AI draft states there is no {concept.name}"
        )
        text += f" ({_quote(c_m)})."
    marks = (
        _marks(cand, "mention", lambda m: m.assertion == cand.assertion),
        _marks(ref, "mention", lambda m: m.assertion == ref.assertion),
    )
    significant = not concept.incidental or concept.critical
    builder.add(category, concept_id, significant, c_m, r_m, text, marks=marks)


def _location(builder: _Builder, concept_id: str, cand: Group, ref: Group) -> None:
    """A wrong side or site; per section too when one report restates the finding elsewhere."""
    concept = builder.lexicon.concepts[concept_id]
    kind = _place_difference(concept.lateral, cand.laterality, ref.laterality, cand.site, ref.site)
    if kind is not None:
        value_c, value_r = getattr(cand, kind), getattr(ref, kind)
        c_m = cand.pick(lambda m: getattr(m, kind) == value_c)
        r_m = ref.pick(lambda m: getattr(m, kind) == value_r)
        marks = (
            _marks(cand, kind, lambda m: getattr(m, kind) == value_c),
            _marks(ref, kind, lambda m: getattr(m, kind) == value_r),
        )
        _add_location(builder, concept_id, kind, c_m, r_m, value_c, value_r, marks)
        return
    if not (cand.restated or ref.restated):
        return
    # "Nodule in the left upper lobe" (findings) restated as "nodule in the paratracheal station"
    # (impression): the impression places the finding elsewhere; compare section by section.
    for c_m, r_m in _by_section(cand.places, ref.places):
        kind = _place_difference(concept.lateral, c_m.laterality, r_m.laterality, c_m.site, r_m.site)
        if kind is not None:
            marks = (
                (getattr(c_m, f"{kind}_span") or c_m.mention_span,),
                (getattr(r_m, f"{kind}_span") or r_m.mention_span,),
            )
            _add_location(builder, concept_id, kind, c_m, r_m, getattr(c_m, kind), getattr(r_m, kind), marks)
            return


def _place_difference(
    lateral: bool, c_side: str | None, r_side: str | None, c_site: str | None, r_site: str | None
) -> str | None:
    """``"laterality"`` (a wrong side), ``"site"`` (same side, another site) or ``None``."""
    if lateral and c_side and r_side and c_side != r_side:
        return "laterality"
    if c_site and r_site and c_site != r_site:
        return "site"
    return None


def _add_location(
    builder: _Builder,
    concept_id: str,
    kind: str,
    c_m: Finding,
    r_m: Finding,
    value_c: str,
    value_r: str,
    marks: tuple[tuple[Span, ...], tuple[Span, ...]],
) -> None:
    concept = builder.lexicon.concepts[concept_id]
    name = concept.name
    if kind == "laterality":
        # A wrong side on a paired organ (lung, breast, kidney, ...) is always significant: it is the
        # error that sends a biopsy, a drain or a surgeon to the wrong side.
        significant = True
        text = (
            f"The AI draft reports the {name} {_side(value_c)} ({_quote(c_m)}); "
            f"the signed report places it {_side(value_r)} ({_quote(r_m)})."
        )
    else:
        significant = concept.critical
        text = (
            f"The AI draft places the {name} in the {value_c} ({_quote(c_m)}); "
            f"the signed report places it in the {value_r} ({_quote(r_m)})."
        )
    builder.add("location", concept_id, significant, c_m, r_m, text, detail=kind, marks=marks)


def _severity(builder: _Builder, concept_id: str, cand: Group, ref: Group) -> None:
    """Size first, then grade; compared section by section so a change in one section counts."""
    for c_m, r_m in _by_section(cand.sizes, ref.sizes):
        if _size_severity(builder, concept_id, c_m, r_m):
            return
    for c_m, r_m in _by_section(cand.grades, ref.grades):
        if _grade_severity(builder, concept_id, c_m, r_m):
            return


def _by_section(c_by: dict[str, Finding], r_by: dict[str, Finding]) -> list[tuple[Finding, Finding]]:
    """Mention pairs to grade: the same section on both sides (impression first), else the overall."""
    common = [
        section for section in ("impression", "findings", "body") if section in c_by and section in r_by
    ]
    if common:
        return [(c_by[section], r_by[section]) for section in common]
    if c_by and r_by:
        return [(next(iter(c_by.values())), next(iter(r_by.values())))]
    return []


def _size_severity(builder: _Builder, concept_id: str, c_m: Finding, r_m: Finding) -> bool:
    concept = builder.lexicon.concepts[concept_id]
    c_size, r_size = c_m.size_mm or 0.0, r_m.size_mm or 0.0
    larger, diff = max(c_size, r_size), abs(c_size - r_size)
    if not (diff > SIZE_REL_TOLERANCE * larger and diff >= SIZE_MIN_MM):
        return False
    big = diff > 0.5 * larger or diff >= 10
    builder.add(
        "severity",
        concept_id,
        concept.critical or (big and not concept.incidental),
        c_m,
        r_m,
        f"The AI draft measures the {concept.name} at {_mm(c_size)} ({_quote(c_m)}); "
        f"the signed report measures it at {_mm(r_size)} ({_quote(r_m)}).",
        marks=((c_m.severity_span or c_m.mention_span,), (r_m.severity_span or r_m.mention_span,)),
    )
    return True


def _grade_severity(builder: _Builder, concept_id: str, c_m: Finding, r_m: Finding) -> bool:
    concept = builder.lexicon.concepts[concept_id]
    diff = abs((c_m.severity_rank or 0.0) - (r_m.severity_rank or 0.0))
    if diff < 1:
        return False
    # Any change of an assessment category (BI-RADS 3 -> 4) changes management: significant.
    significant = concept.critical or (diff >= 2 and not concept.incidental) or concept_id in RADS_CONCEPTS
    builder.add(
        "severity",
        concept_id,
        significant,
        c_m,
        r_m,
        f"The AI draft describes the {concept.name} as {c_m.severity} ({_quote(c_m)}); "
        f"the signed report describes it as {r_m.severity} ({_quote(r_m)}).",
        marks=((c_m.severity_span or c_m.mention_span,), (r_m.severity_span or r_m.mention_span,)),
    )
    return True


def _mm(value: float) -> str:
    return f"{value:g} mm"


def _comparison(builder: _Builder, cand: Group | None, ref: Group) -> None:
    concept_id = ref.concept
    concept = builder.lexicon.concepts[concept_id]
    name = concept.name
    significant = concept.critical
    c_change = cand.change if cand else None
    r_change = ref.change
    if c_change == r_change:
        return
    c_m = cand.pick(lambda m: m.change == c_change) if cand else None
    r_m = ref.pick(lambda m: m.change == r_change)
    if r_change is not None and (c_change is None or (c_change == "stable" and r_change in REAL_CHANGES)):
        # Stability is comparison information too (a nodule stable for two years is benign), so leaving
        # out "unchanged" is an omission, though only a minor one.
        tail = (
            f"the AI draft calls it unchanged ({_quote(c_m)})."
            if c_change == "stable"
            else "the AI draft does not report this comparison with the prior study."
        )
        builder.add(
            "comparison_omitted",
            concept_id,
            significant and r_change in REAL_CHANGES,
            c_m,
            r_m,
            f"The signed report describes the {name} as {_CHANGE_WORDS[r_change]} compared with the prior "
            f"({_quote(r_m)}); {tail}",
            marks=(
                _marks(cand, "change", lambda m: m.change == c_change),
                _marks(ref, "change", lambda m: m.change == r_change),
            ),
        )
    elif c_change is not None and cand is not None and r_change != c_change:
        if r_change is None:
            tail = "the signed report does not describe a change from a prior study."
        else:
            tail = f"the signed report describes it as {_CHANGE_WORDS[r_change]} ({_quote(r_m)})."
        builder.add(
            "comparison_added",
            concept_id,
            significant and c_change in REAL_CHANGES,
            c_m,
            r_m if r_change else ref.pick(),
            f"The AI draft describes the {name} as {_CHANGE_WORDS[c_change]} compared with the prior "
            f"({_quote(c_m)}); {tail}",
            marks=(
                _marks(cand, "change", lambda m: m.change == c_change),
                _marks(ref, "change", lambda m: m.change == r_change) if r_change else (),
            ),
        )
