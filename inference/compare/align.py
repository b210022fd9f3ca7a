"""Merge mentions into findings, align findings across the two reports, and classify differences.

A report often states one finding twice (findings and impression); mentions of one concept whose
locations agree are merged into one finding so it is compared, and counted, once. Findings are then
aligned across reports by concept and location, and each aligned pair (or lone finding) is checked
for the seven discrepancy categories.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .extract import SIZE_MIN_MM, SIZE_REL_TOLERANCE
from .lexicon import LEXICON, SUMMARY_CONCEPTS, Lexicon
from .model import CATEGORIES, MINOR, SIGNIFICANT, Discrepancy, Finding

REAL_CHANGES = frozenset({"new", "increased", "decreased", "resolved"})
_ASSERTION_RANK = {"present": 2, "possible": 1, "absent": 0}
_RANK_ASSERTION = {rank: assertion for assertion, rank in _ASSERTION_RANK.items()}
_QUOTE_LIMIT = 90
_FOLD_WINDOW = 4


@dataclass
class Group:
    """One finding in one report: mentions of a concept whose locations agree."""

    concept: str
    mentions: list[Finding] = field(default_factory=list)
    assertion: str = "absent"
    laterality: str | None = None
    site: str | None = None
    severity_rank: float | None = None
    severity: str | None = None
    size_mm: float | None = None
    change: str | None = None
    _impression_rank: int = -1
    _other_rank: int = -1

    def compatible(self, mention: Finding) -> bool:
        """True when ``mention`` can describe the same finding (no conflicting side or site)."""
        if self.laterality and mention.laterality and self.laterality != mention.laterality:
            return False
        return not (self.site and mention.site and self.site != mention.site)

    def add(self, mention: Finding) -> None:
        """Merge a mention; the impression decides the assertion when both sections disagree."""
        self.mentions.append(mention)
        # Incremental: a 1 MB report can put tens of thousands of mentions in one group.
        rank = _ASSERTION_RANK[mention.assertion]
        if mention.section == "impression":
            self._impression_rank = max(self._impression_rank, rank)
        else:
            self._other_rank = max(self._other_rank, rank)
        deciding = self._impression_rank if self._impression_rank >= 0 else self._other_rank
        self.assertion = _RANK_ASSERTION[deciding]
        self.laterality = self.laterality or mention.laterality
        self.site = self.site or mention.site
        if mention.severity_rank is not None and self.severity_rank is None:
            self.severity_rank, self.severity = mention.severity_rank, mention.severity
        if mention.size_mm is not None:
            self.size_mm = max(self.size_mm or 0.0, mention.size_mm)
        if mention.change and (self.change is None or self.change == "stable"):
            self.change = mention.change

    @property
    def positive(self) -> bool:
        return self.assertion != "absent"

    def pick(self, predicate: Callable[[Finding], bool] | None = None) -> Finding:
        """The mention to quote: the first that carries the attribute in question, else the first."""
        if predicate is not None:
            for mention in self.mentions:
                if predicate(mention):
                    return mention
        return self.mentions[0]


def _fold_related(findings: tuple[Finding, ...], lexicon: Lexicon) -> list[Finding]:
    """Within one sentence, fold an observation into the diagnosis offered for it.

    "Opacity, which may represent pneumonia" or "enhancing mass, suspicious for renal cell carcinoma"
    name one finding twice at two levels of the hierarchy; the narrower concept (with its assertion)
    stands for both, inheriting location and size it lacks. Change words stay with their own noun:
    in "increased opacity ... could be pneumonia", "increased" may describe density, not time.
    """
    result = list(findings)
    by_sentence: dict[tuple[int, int], list[int]] = {}
    for index, finding in enumerate(result):
        if finding.assertion != "absent":
            by_sentence.setdefault(finding.span, []).append(index)
    dropped: set[int] = set()
    for indices in by_sentence.values():
        for position, broad in enumerate(indices):
            # Neighbours only: a diagnosis sits next to its observation, and a hostile sentence with 10^5
            # mentions must stay linear.
            for narrow in indices[max(0, position - _FOLD_WINDOW) : position + _FOLD_WINDOW + 1]:
                if broad == narrow or broad in dropped or narrow in dropped:
                    continue
                b, n = result[broad], result[narrow]
                if b.concept == n.concept or not lexicon.is_ancestor(b.concept, n.concept):
                    continue
                if b.laterality and n.laterality and b.laterality != n.laterality:
                    continue
                result[narrow] = replace(
                    n,
                    laterality=n.laterality or b.laterality,
                    site=n.site or b.site,
                    size_mm=n.size_mm if n.size_mm is not None else b.size_mm,
                    severity=n.severity or b.severity,
                    severity_rank=n.severity_rank if n.severity_rank is not None else b.severity_rank,
                    mention_span=(
                        min(b.mention_span[0], n.mention_span[0]),
                        max(b.mention_span[1], n.mention_span[1]),
                    ),
                    words=n.sentence[
                        min(b.mention_span[0], n.mention_span[0]) - n.span[0] : max(
                            b.mention_span[1], n.mention_span[1]
                        )
                        - n.span[0]
                    ],
                )
                dropped.add(broad)
    return [f for i, f in enumerate(result) if i not in dropped]


def group_findings(findings: tuple[Finding, ...], lexicon: Lexicon = LEXICON) -> dict[str, list[Group]]:
    """Merge mentions per concept; mentions with conflicting locations stay separate findings."""
    groups: dict[str, list[Group]] = {}
    for finding in _fold_related(findings, lexicon):
        if finding.concept in SUMMARY_CONCEPTS:
            continue
        bucket = groups.setdefault(finding.concept, [])
        for group in bucket:
            if group.compatible(finding):
                group.add(finding)
                break
        else:
            group = Group(finding.concept)
            group.add(finding)
            bucket.append(group)
    _merge_sides(groups)
    return groups


def _merge_sides(groups: dict[str, list[Group]]) -> None:
    """Fold a left and a right finding of one concept at the same site into one bilateral finding.

    "Small right effusion and trace left effusion" then aligns with "small bilateral effusions".
    """
    for bucket in groups.values():
        left = [g for g in bucket if g.positive and g.laterality == "left"]
        right = [g for g in bucket if g.positive and g.laterality == "right"]
        for l_group in left:
            partner = next((r for r in right if r.site == l_group.site), None)
            if partner is None:
                continue
            right.remove(partner)
            bucket.remove(partner)
            l_group.laterality = "bilateral"
            for mention in partner.mentions:
                l_group.add(mention)


def _location_score(a: Group, b: Group) -> float:
    score = 0.0
    for left, right in ((a.laterality, b.laterality), (a.site, b.site)):
        if left and right:
            if left == right:
                score += 2
            elif "bilateral" in (left, right):
                score += 0.5
        else:
            score += 1
    if a.positive == b.positive:
        score += 0.5
    return score


def align(
    candidate: dict[str, list[Group]], reference: dict[str, list[Group]], lexicon: Lexicon = LEXICON
) -> tuple[list[tuple[Group | None, Group | None]], int]:
    """Pair candidate and reference findings; return the pairs and the count of matched positives.

    Same-concept pairs are chosen greedily by location agreement. Leftover positive findings are then
    paired with a leftover positive finding of a parent or child concept at a compatible location
    ("left basilar opacity" vs "left lower lobe consolidation") so wording granularity is not an error.
    """
    pairs: list[tuple[Group | None, Group | None]] = []
    leftover_c: list[Group] = []
    leftover_r: list[Group] = []
    for concept in sorted(set(candidate) | set(reference)):
        c_groups = candidate.get(concept, [])
        r_groups = reference.get(concept, [])
        scored = sorted(
            ((_location_score(c, r), i, j) for i, c in enumerate(c_groups) for j, r in enumerate(r_groups)),
            key=lambda entry: (-entry[0], entry[1], entry[2]),
        )
        used_c: set[int] = set()
        used_r: set[int] = set()
        for _, i, j in scored:
            if i in used_c or j in used_r:
                continue
            used_c.add(i)
            used_r.add(j)
            pairs.append((c_groups[i], r_groups[j]))
        leftover_c.extend(g for i, g in enumerate(c_groups) if i not in used_c)
        leftover_r.extend(g for j, g in enumerate(r_groups) if j not in used_r)

    for c_group in list(leftover_c):
        if not c_group.positive:
            continue
        for r_group in leftover_r:
            related = lexicon.is_ancestor(c_group.concept, r_group.concept) or lexicon.is_ancestor(
                r_group.concept, c_group.concept
            )
            # Only when each report names this finding solely with its own term; a report that uses the
            # other's term elsewhere is describing a further, separate finding.
            own_terms = not candidate.get(r_group.concept) and not reference.get(c_group.concept)
            if related and own_terms and r_group.positive and _location_score(c_group, r_group) >= 2:
                pairs.append((c_group, r_group))
                leftover_c.remove(c_group)
                leftover_r.remove(r_group)
                break
    # A leftover finding already covered by a related finding on the other side ("opacity ... may represent
    # pneumonia" read against "pneumonia") is the same finding described twice, not a miss.
    leftover_c = [g for g in leftover_c if not _covered(g, reference, lexicon)]
    leftover_r = [g for g in leftover_r if not _covered(g, candidate, lexicon)]
    pairs.extend((g, None) for g in leftover_c)
    pairs.extend((None, g) for g in leftover_r)
    matched = sum(1 for c, r in pairs if c is not None and r is not None and c.positive and r.positive)
    return pairs, matched


def _covered(group: Group, other: dict[str, list[Group]], lexicon: Lexicon) -> bool:
    """True when the other report names this finding only with a related (broader or narrower) term.

    If the other report uses the same concept elsewhere, this leftover is a further, distinct finding
    (a second lesion) and stays a discrepancy.
    """
    if not group.positive or other.get(group.concept):
        return False
    for concept, groups in other.items():
        related = lexicon.is_ancestor(concept, group.concept) or lexicon.is_ancestor(group.concept, concept)
        if related and concept != group.concept:
            if any(g.positive and _location_score(g, group) >= 2 for g in groups):
                return True
    return False


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
    ) -> None:
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
            )
        )


def classify(
    pairs: list[tuple[Group | None, Group | None]], lexicon: Lexicon = LEXICON
) -> tuple[Discrepancy, ...]:
    """Turn aligned pairs into discrepancies, sorted significant first, then by category and position."""
    builder = _Builder(lexicon)
    for cand, ref in pairs:
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
            builder.items,
            key=lambda d: (
                d.significance != SIGNIFICANT,
                order[d.category],
                (d.reference_span or d.candidate_span or (0, 0))[0],
                d.finding,
            ),
        )
    )


def _lone(builder: _Builder, group: Group, category: str) -> None:
    concept = builder.lexicon.concepts[group.concept]
    mention = group.pick(lambda m: m.assertion != "absent")
    hedged = group.assertion == "possible"
    significant = concept.critical or (not concept.incidental and not hedged)
    name = concept.name
    if category == "false_finding":
        text = (
            f"The AI draft reports {_quote(mention)} ({name}); the signed report does not mention it."
            if not hedged
            else f"The AI draft raises a possible {name} ({_quote(mention)}); "
            "the signed report does not mention it."
        )
        builder.add(category, group.concept, significant, mention, None, text)
    else:
        text = (
            f"The signed report describes {_quote(mention)} ({name}); the AI draft does not mention it."
            if not hedged
            else f"The signed report raises a possible {name} ({_quote(mention)}); "
            "the AI draft does not mention it."
        )
        builder.add(category, group.concept, significant, None, mention, text)


def _classify_pair(builder: _Builder, cand: Group, ref: Group) -> None:
    lexicon = builder.lexicon
    # Related concepts paired by align(): name the finding in the signed report's terms.
    concept_id = ref.concept
    concept = lexicon.concepts[concept_id]
    name = concept.name
    critical, incidental = concept.critical, concept.incidental
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
        )
    elif c_assert == "present" and r_assert == "absent":
        c_m = cand.pick(lambda m: m.assertion == "present")
        r_m = ref.pick(lambda m: m.assertion == "absent")
        builder.add(
            "false_finding",
            concept_id,
            not incidental or critical,
            c_m,
            r_m,
            f"The AI draft reports {_quote(c_m)}, "
            f"but the signed report states there is no {name} ({_quote(r_m)}).",
        )
        return
    elif c_assert == "absent" and r_assert == "present":
        c_m = cand.pick(lambda m: m.assertion == "absent")
        r_m = ref.pick(lambda m: m.assertion == "present")
        builder.add(
            "missed_finding",
            concept_id,
            not incidental or critical,
            c_m,
            r_m,
            f"The signed report describes {_quote(r_m)}, "
            f"but the AI draft states there is no {name} ({_quote(c_m)}).",
        )
        return

    if cand.positive and ref.positive:
        _location(builder, concept_id, cand, ref)
        _severity(builder, concept_id, cand, ref)
    if cand.positive == ref.positive:
        _comparison(builder, cand, ref)


def _location(builder: _Builder, concept_id: str, cand: Group, ref: Group) -> None:
    concept = builder.lexicon.concepts[concept_id]
    name = concept.name
    if concept.lateral and cand.laterality and ref.laterality and cand.laterality != ref.laterality:
        c_m = cand.pick(lambda m: m.laterality == cand.laterality)
        r_m = ref.pick(lambda m: m.laterality == ref.laterality)
        builder.add(
            "location",
            concept_id,
            not concept.incidental or concept.critical,
            c_m,
            r_m,
            f"The AI draft reports the {name} {_side(cand.laterality)} ({_quote(c_m)}); "
            f"the signed report places it {_side(ref.laterality)} ({_quote(r_m)}).",
            detail="laterality",
        )
    elif cand.site and ref.site and cand.site != ref.site:
        c_m = cand.pick(lambda m: m.site == cand.site)
        r_m = ref.pick(lambda m: m.site == ref.site)
        builder.add(
            "location",
            concept_id,
            concept.critical,
            c_m,
            r_m,
            f"The AI draft places the {name} in the {cand.site} ({_quote(c_m)}); "
            f"the signed report places it in the {ref.site} ({_quote(r_m)}).",
            detail="site",
        )


def _severity(builder: _Builder, concept_id: str, cand: Group, ref: Group) -> None:
    concept = builder.lexicon.concepts[concept_id]
    name = concept.name
    if cand.size_mm is not None and ref.size_mm is not None:
        larger = max(cand.size_mm, ref.size_mm)
        diff = abs(cand.size_mm - ref.size_mm)
        if diff > SIZE_REL_TOLERANCE * larger and diff >= SIZE_MIN_MM:
            c_m = cand.pick(lambda m: m.size_mm is not None)
            r_m = ref.pick(lambda m: m.size_mm is not None)
            big = diff > 0.5 * larger or diff >= 10
            builder.add(
                "severity",
                concept_id,
                concept.critical or (big and not concept.incidental),
                c_m,
                r_m,
                f"The AI draft measures the {name} at {_mm(cand.size_mm)} ({_quote(c_m)}); "
                f"the signed report measures it at {_mm(ref.size_mm)} ({_quote(r_m)}).",
            )
            return
    if cand.severity_rank is not None and ref.severity_rank is not None:
        diff = abs(cand.severity_rank - ref.severity_rank)
        if diff >= 1:
            c_m = cand.pick(lambda m: m.severity_rank is not None)
            r_m = ref.pick(lambda m: m.severity_rank is not None)
            builder.add(
                "severity",
                concept_id,
                concept.critical or (diff >= 2 and not concept.incidental),
                c_m,
                r_m,
                f"The AI draft describes the {name} as {cand.severity} ({_quote(c_m)}); "
                f"the signed report describes it as {ref.severity} ({_quote(r_m)}).",
            )


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
        )
