"""Merge mentions into findings, align findings across the two reports, and classify differences.

A report often states one finding twice (findings and impression); mentions of one concept whose
locations agree are merged into one finding so it is compared, and counted, once. Findings are then
aligned across reports by concept and location, and each aligned pair (or lone finding) is checked
for the discrepancy categories (``classify.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .lexicon import LEXICON, SUMMARY_CONCEPTS, Lexicon
from .model import Finding

_ASSERTION_RANK = {"present": 2, "possible": 1, "absent": 0}
_RANK_ASSERTION = {rank: assertion for assertion, rank in _ASSERTION_RANK.items()}
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
    #: First grade and largest size per section: a grade changed in one section only is still a change.
    grades: dict[str, Finding] = field(default_factory=dict)
    sizes: dict[str, Finding] = field(default_factory=dict)
    #: First mention with a side or site per section; compared per section only when ``restated``.
    places: dict[str, Finding] = field(default_factory=dict)
    #: True once a restatement at another site, from another section, was folded in (``_fold_leftovers``).
    restated: bool = False
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
        if mention.severity_rank is not None:
            self.grades.setdefault(mention.section, mention)
        if mention.laterality or mention.site:
            self.places.setdefault(mention.section, mention)
        if mention.size_mm is not None:
            kept = self.sizes.get(mention.section)
            if kept is None or (kept.size_mm or 0.0) < mention.size_mm:
                self.sizes[mention.section] = mention
        if mention.size_mm is not None:
            self.size_mm = max(self.size_mm or 0.0, mention.size_mm)
        # A denied finding dates nothing ("no stable cardiomegaly" beside "cardiomegaly"), except that a
        # resolved one is the change.
        dated = mention.assertion != "absent" or mention.change == "resolved"
        if dated and mention.change and (self.change is None or self.change == "stable"):
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


def _diagnosis_of(broad: Finding, narrow: Finding, lexicon: Lexicon) -> bool:
    """True when ``narrow`` is a narrower concept offered for ``broad`` ("opacity ... pneumonia")."""
    return broad.concept != narrow.concept and lexicon.is_ancestor(broad.concept, narrow.concept)


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
                if not _diagnosis_of(b, n, lexicon):
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

    "Small right effusion and trace left effusion" then aligns with "small bilateral effusions". The two
    must share a section: a left finding in the findings and a right one only in the impression is one
    finding told with two sides (a location error), not a bilateral finding.
    """
    for bucket in groups.values():
        left = [g for g in bucket if g.positive and g.laterality == "left"]
        right = [g for g in bucket if g.positive and g.laterality == "right"]
        for l_group in left:
            sections = {m.section for m in l_group.mentions}
            partner = next(
                (r for r in right if r.site == l_group.site and sections & {m.section for m in r.mentions}),
                None,
            )
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

    Same-concept pairs are chosen greedily by location agreement. A leftover that is the same finding
    told again within its own report (an impression restating it at another site, or a broader name
    such as "cyst" beside "breast cyst") is folded into that finding, so one finding tells one story.
    Leftover positive findings are then paired with a leftover positive finding of a parent or child
    concept at a compatible location ("left basilar opacity" vs "left lower lobe consolidation") so
    wording granularity is not an error.
    """
    pairs, leftover_c, leftover_r = _pair_same_concept(candidate, reference)
    partnered = {id(g) for pair in pairs for g in pair}
    leftover_c = _fold_leftovers(leftover_c, candidate, partnered, lexicon)
    leftover_r = _fold_leftovers(leftover_r, reference, partnered, lexicon)
    _pair_related(pairs, leftover_c, leftover_r, candidate, reference, lexicon)
    # A leftover finding already covered by a related finding on the other side ("opacity ... may represent
    # pneumonia" read against "pneumonia") is the same finding described twice, not a miss.
    # A group already paired with its own concept on the other side tells its own story: "opacity" in
    # the draft, paired with the signed "opacity", cannot also stand for the signed "pneumonia".
    paired = {
        id(g)
        for c_group, r_group in pairs
        if c_group
        and r_group
        and c_group.concept == r_group.concept
        and c_group.positive
        and r_group.positive
        for g in (c_group, r_group)
    }
    leftover_c = [g for g in leftover_c if not _covered(g, reference, lexicon, paired)]
    leftover_r = [g for g in leftover_r if not _covered(g, candidate, lexicon, paired)]
    pairs.extend((g, None) for g in leftover_c)
    pairs.extend((None, g) for g in leftover_r)
    matched = sum(1 for c, r in pairs if c is not None and r is not None and c.positive and r.positive)
    return pairs, matched


def _pair_same_concept(
    candidate: dict[str, list[Group]], reference: dict[str, list[Group]]
) -> tuple[list[tuple[Group | None, Group | None]], list[Group], list[Group]]:
    """Pair the findings of each concept greedily by location agreement; return pairs and leftovers."""
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
    return pairs, leftover_c, leftover_r


def _pair_related(
    pairs: list[tuple[Group | None, Group | None]],
    leftover_c: list[Group],
    leftover_r: list[Group],
    candidate: dict[str, list[Group]],
    reference: dict[str, list[Group]],
    lexicon: Lexicon,
) -> None:
    """Pair leftover positives of a parent and a child concept at a compatible location (in place)."""
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


def _fold_leftovers(
    leftovers: list[Group], groups: dict[str, list[Group]], partnered: set[int], lexicon: Lexicon
) -> list[Group]:
    """Fold each leftover that restates another finding of its own report into it; return the rest.

    The folded group leaves ``groups`` too, so later steps see the report name that finding once.
    """
    kept: list[Group] = []
    for group in leftovers:
        target = _restated_elsewhere(group, groups, partnered) or _narrower_name(group, groups, lexicon)
        if target is None:
            kept.append(group)
            continue
        for mention in group.mentions:
            target.add(mention)
        target.restated = target.restated or target.concept == group.concept
        bucket = groups[group.concept]
        bucket.remove(group)
        if not bucket:
            del groups[group.concept]
    return kept


def _restated_elsewhere(group: Group, groups: dict[str, list[Group]], partnered: set[int]) -> Group | None:
    """The paired finding a leftover restates in another section at another site or side, if just one.

    "Pulmonary nodule in the left upper lobe" (findings) and "Pulmonary nodule in the left paratracheal
    station" (impression) in one draft, against one signed nodule: one section repeats the finding with a
    wrong location; it is not a second, invented nodule. Only a finding stated in none of the leftover's
    sections qualifies: a section that names two nodules at two sites describes two nodules.
    """
    if not group.positive:
        return None
    sections = {m.section for m in group.mentions}
    targets = [
        other
        for other in groups.get(group.concept, [])
        if other is not group
        and id(other) in partnered
        and other.positive
        and not sections & {m.section for m in other.mentions}
    ]
    return targets[0] if len(targets) == 1 else None


def _narrower_name(group: Group, groups: dict[str, list[Group]], lexicon: Lexicon) -> Group | None:
    """The narrower finding of the same report that a broader leftover names again, if one is clear.

    "30 mm simple cyst in the lower inner quadrant of the right breast" and "Breast cyst in the lower
    inner quadrant of the right breast" are one cyst; "new bilateral airspace opacity" beside "bilateral
    consolidation" lends its "new" to the consolidation. Both must share a stated side or site (no
    conflict) and the same assertion. A broader finding paired with its own concept is never folded
    (it is not a leftover): the signed "opacity" + "pneumonia" against a draft "opacity" still misses
    the pneumonia.
    """
    if not group.positive:
        return None
    best: list[tuple[float, Group]] = []
    for concept, others in groups.items():
        if concept == group.concept or not lexicon.is_ancestor(group.concept, concept):
            continue
        for other in others:
            if other.assertion == group.assertion and _same_place(group, other):
                best.append((_location_score(group, other), other))
    best.sort(key=lambda entry: -entry[0])
    if not best or (len(best) > 1 and best[0][0] == best[1][0]):
        return None  # no narrower name, or two equally good ones: do not guess
    return best[0][1]


def _same_place(a: Group, b: Group) -> bool:
    """No conflicting side or site, and at least one of them stated alike on both."""
    shared = False
    for left, right in ((a.laterality, b.laterality), (a.site, b.site)):
        if left and right:
            if left != right:
                return False
            shared = True
    return shared


def _covered(group: Group, other: dict[str, list[Group]], lexicon: Lexicon, paired: set[int]) -> bool:
    """True when the other report names this finding only with a related (broader or narrower) term.

    If the other report uses the same concept elsewhere, this leftover is a further, distinct finding
    (a second lesion) and stays a discrepancy. A leftover diagnosis is not covered by a broader
    observation that is already paired with its own concept: the signed "opacity ... pneumonia" read
    against a draft that only says "opacity" is a missed pneumonia. A leftover observation is covered by
    the narrower diagnosis on the other side even when that is paired ("opacity" + "atelectasis" in the
    draft against "opacity, likely atelectasis").
    """
    if not group.positive or other.get(group.concept):
        return False
    for concept, groups in other.items():
        if concept == group.concept:
            continue
        broader = lexicon.is_ancestor(concept, group.concept)
        if not broader and not lexicon.is_ancestor(group.concept, concept):
            continue
        for g in groups:
            if g.positive and _location_score(g, group) >= 2 and not (broader and id(g) in paired):
                return True
    return False
