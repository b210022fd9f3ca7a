"""Sampling the true findings of a study and perturbing them into what the upstream AI reported.

Every function takes the study's own ``random.Random`` so that a study's content depends only on the
seed and its index, never on how many random draws another study happened to use.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from .catalog import Pattern, SpecialtyCatalog
from .models import Finding, Perturbation

# About 70% of studies the AI gets exactly right (the evaluation needs mostly-concordant pairs, as in
# life): the per-study rates below are chosen for that share.
TWO_PERTURBATIONS_RATE = 0.2

# A normal study can only receive a false finding, so it is perturbed less often and abnormal studies
# more often; this keeps ~70% unperturbed overall while spreading errors over all categories.
_PERTURB_RATE_NORMAL = 0.10
_PERTURB_RATE_ABNORMAL = 0.37

# Relative chance of each category when several are possible. Comparison errors need a prior (a
# minority of studies), so they are weighted up to appear about as often as the rest.
_CATEGORY_WEIGHTS: dict[str, float] = {
    "false_finding": 0.4,
    "missed_finding": 1.0,
    "location": 1.0,
    "severity": 1.0,
    "comparison_added": 8.0,
    "comparison_omitted": 2.5,
    "certainty": 1.0,
}

_CHANGES_WITH_TREND = ("new", "increased", "decreased", "stable")

T = TypeVar("T")


def weighted_choice(rng: random.Random, items: Sequence[T], weights: Sequence[float]) -> T:
    """One item by weight (``random.choices`` is deterministic for a given ``Random`` state)."""
    return rng.choices(items, weights=weights, k=1)[0]


def is_critical(pattern: Pattern, change: str | None) -> bool:
    """An unchanged or improving critical finding is already known, so it is not phoned through again."""
    return pattern.critical and change not in ("stable", "decreased", "resolved")


def sample_finding(
    rng: random.Random,
    pattern: Pattern,
    *,
    body_part: str,
    side: str | None,
    change: str | None,
    hedge_rate: float,
) -> Finding:
    """A fresh finding of ``pattern``; a one-sided study (``side``) puts every finding on that side."""
    laterality: str | None = None
    if pattern.lateralities:
        if side is not None and side in pattern.lateralities:
            laterality = side
        else:
            laterality = rng.choice(pattern.lateralities)
    location = None
    templates = pattern.location_templates(body_part)
    if templates and laterality != "bilateral":
        location = rng.choice(templates).format(side=laterality)
    size = rng.randint(*pattern.size_mm) if pattern.size_mm else None
    severity = rng.choice(pattern.severities) if pattern.severities else None
    certainty = "possible" if rng.random() < hedge_rate else "definite"
    return Finding(
        concept=pattern.concept,
        display=pattern.display,
        laterality=laterality,  # type: ignore[arg-type]
        location=location,
        size_mm=size,
        severity=severity,  # type: ignore[arg-type]
        change=change,  # type: ignore[arg-type]
        certainty=certainty,  # type: ignore[arg-type]
        critical=is_critical(pattern, change),
    )


def compatible_patterns(spec: SpecialtyCatalog, modality: str, body_part: str) -> tuple[Pattern, ...]:
    """Patterns of the specialty visible on this modality and body part (MG sees only breast, etc.)."""
    return tuple(p for p in spec.patterns if p.applies_to(modality, body_part))


def _pick_new_patterns(
    rng: random.Random, candidates: Sequence[Pattern], count: int, exclude: set[str]
) -> list[Pattern]:
    chosen: list[Pattern] = []
    pool = [p for p in candidates if p.concept not in exclude]
    for _ in range(count):
        if not pool:
            break
        pick = weighted_choice(rng, pool, [p.weight for p in pool])
        chosen.append(pick)
        pool = [p for p in pool if p is not pick]
    return chosen


def _evolve(rng: random.Random, pattern: Pattern, prior: Finding) -> Finding:
    """The same finding at follow-up: stable, grown, shrunk, resolved, or not compared at all."""
    roll = rng.random()
    if roll < 0.40:
        change: str | None = "stable"
    elif roll < 0.58:
        change = "increased"
    elif roll < 0.76:
        change = "decreased"
    elif roll < 0.84:
        change = "stable" if pattern.chronic else "resolved"
    else:
        change = None  # reader describes it without comparing: room for a 'comparison_added' error
    size, severity = prior.size_mm, prior.severity
    if change == "increased":
        if size is not None:
            size = max(size + 2, round(size * rng.uniform(1.25, 1.7)))
        if severity is not None:
            severity = _step(pattern.severities, severity, +1)
    elif change == "decreased":
        if size is not None:
            size = min(size - 1, round(size * rng.uniform(0.5, 0.8)))
            if size < 1:
                # Too small to measure: gone, unless it is the kind of thing that never goes.
                change, size = ("stable", prior.size_mm) if pattern.chronic else ("resolved", prior.size_mm)
        if severity is not None and change == "decreased":
            severity = _step(pattern.severities, severity, -1)
    if change == "resolved":
        size, severity = None, None
    return replace(
        prior,
        size_mm=size,
        severity=severity,
        change=change,
        certainty="definite" if change == "resolved" else prior.certainty,
        critical=is_critical(pattern, change),
    )


def _step(scale: Sequence[str], value: str, delta: int) -> str:
    index = min(max(scale.index(value) + delta, 0), len(scale) - 1)
    return scale[index]


def true_findings(
    rng: random.Random,
    spec: SpecialtyCatalog,
    *,
    modality: str,
    body_part: str,
    side: str | None,
    prior_findings: Sequence[Finding] | None,
    hedge_rate: float,
) -> tuple[Finding, ...]:
    """What is really on the images. With a prior, earlier findings evolve and a few new ones appear."""
    candidates = compatible_patterns(spec, modality, body_part)
    findings: list[Finding] = []
    if prior_findings is not None:
        for prior in prior_findings:
            pattern = spec_pattern(spec, prior.concept)
            # A resolved finding is history; a finding this modality cannot see is not described.
            if prior.change == "resolved" or pattern is None or not pattern.applies_to(modality, body_part):
                continue
            findings.append(_evolve(rng, pattern, prior))
        new_count = 1 if rng.random() < 0.35 else 0
        if not findings and rng.random() > spec.normal_rate:
            new_count = max(new_count, 1)
    elif rng.random() < spec.normal_rate:
        new_count = 0
    else:
        new_count = weighted_choice(rng, (1, 2, 3), (0.55, 0.3, 0.15))
    taken = {f.concept for f in findings}
    for pattern in _pick_new_patterns(rng, candidates, new_count, taken):
        if prior_findings is None:
            change = None
        else:
            change = "new" if rng.random() < 0.7 else None
        findings.append(
            sample_finding(rng, pattern, body_part=body_part, side=side, change=change, hedge_rate=hedge_rate)
        )
    # Critical findings lead, resolved ones trail: the order a reader would dictate them in.
    findings.sort(key=lambda f: (not f.critical, f.change == "resolved"))
    return tuple(findings)


def spec_pattern(spec: SpecialtyCatalog, concept: str) -> Pattern | None:
    """The pattern of ``concept`` within one specialty, or None."""
    for pattern in spec.patterns:
        if pattern.concept == concept:
            return pattern
    return None


# ----------------------------------------------------------------------------------------- perturbing


def _active(findings: Sequence[Finding], used: set[str]) -> list[Finding]:
    """Findings still present (not resolved) and not already perturbed."""
    return [f for f in findings if f.change != "resolved" and f.concept not in used]


def _eligible(
    category: str,
    findings: Sequence[Finding],
    spec: SpecialtyCatalog,
    candidates: Sequence[Pattern],
    has_prior: bool,
    body_part: str,
    used: set[str],
) -> list[Finding] | list[Pattern]:
    """What a category could act on in this study (empty: the category is impossible here)."""
    present = {f.concept for f in findings}
    if category == "false_finding":
        return [p for p in candidates if p.concept not in present and p.concept not in used]
    active = _active(findings, used)
    if category == "missed_finding" or category == "certainty":
        return active
    if category == "location":
        return [f for f in active if _can_move(f, spec, body_part)]
    if category == "severity":
        return [f for f in active if _can_resize(f, spec)]
    if not has_prior:
        return []
    if category == "comparison_added":
        return [f for f in active if f.change is None]
    if category == "comparison_omitted":
        return [f for f in active if f.change in _CHANGES_WITH_TREND]
    raise ValueError(category)


def _can_move(finding: Finding, spec: SpecialtyCatalog, body_part: str) -> bool:
    pattern = spec_pattern(spec, finding.concept)
    assert pattern is not None
    if finding.laterality in ("left", "right"):
        return True
    if finding.laterality == "bilateral":
        return True  # bilateral -> one side
    return len(pattern.location_templates(body_part)) > 1


def _can_resize(finding: Finding, spec: SpecialtyCatalog) -> bool:
    pattern = spec_pattern(spec, finding.concept)
    assert pattern is not None
    return finding.size_mm is not None or (finding.severity is not None and len(pattern.severities) > 1)


def _describe(finding: Finding) -> str:
    """A compact name of a finding for a perturbation's detail line."""
    parts = [finding.severity, finding.laterality if not finding.location else None, finding.display]
    text = " ".join(p for p in parts if p)
    if finding.location:
        text += f" ({finding.location})"
    if finding.size_mm is not None:
        text += f", {finding.size_mm} mm"
    return text


def _resize(rng: random.Random, size: int) -> int:
    """A size off by at least 30% and at least 3 mm, so that no reader would call it the same."""
    grow = size < 10 or rng.random() < 0.5
    if grow:
        new = max(size + 3, math.ceil(size * rng.uniform(1.4, 2.0)))
    else:
        new = min(size - 3, math.floor(size * rng.uniform(0.4, 0.65)))
    assert abs(new - size) >= 3 and abs(new - size) >= 0.3 * size and new >= 1
    return new


def _flip(side: str) -> str:
    return {"left": "right", "right": "left"}[side]


def _move(
    rng: random.Random, finding: Finding, spec: SpecialtyCatalog, body_part: str
) -> tuple[Finding, str]:
    pattern = spec_pattern(spec, finding.concept)
    assert pattern is not None
    templates = pattern.location_templates(body_part)
    side = finding.laterality
    if side == "bilateral":
        new_side = rng.choice(("left", "right"))
        location = rng.choice(templates).format(side=new_side) if templates else None
        return replace(finding, laterality=new_side, location=location), f"bilateral -> {new_side}"
    alternatives = [t.format(side=side) for t in templates]
    alternatives = [loc for loc in alternatives if loc != finding.location]
    if side in ("left", "right") and (not alternatives or rng.random() < 0.7):
        new_side = _flip(side)
        location = finding.location.replace(side, new_side) if finding.location else None
        return replace(finding, laterality=new_side, location=location), f"{side} -> {new_side}"
    location = rng.choice(alternatives)
    return replace(finding, location=location), f"{finding.location} -> {location}"


def _apply(
    rng: random.Random,
    category: str,
    target: Finding | Pattern,
    ai: list[Finding],
    spec: SpecialtyCatalog,
    *,
    body_part: str,
    side: str | None,
) -> Perturbation:
    """Change ``ai`` in place according to ``category`` and return the label that says how."""
    if category == "false_finding":
        assert isinstance(target, Pattern)
        invented = sample_finding(rng, target, body_part=body_part, side=side, change=None, hedge_rate=0.0)
        ai.insert(rng.randint(0, len(ai)), invented)
        return Perturbation("false_finding", invented.concept, f"added {_describe(invented)}")
    assert isinstance(target, Finding)
    index = next(i for i, f in enumerate(ai) if f.concept == target.concept)
    pattern = spec_pattern(spec, target.concept)
    assert pattern is not None
    if category == "missed_finding":
        del ai[index]
        return Perturbation("missed_finding", target.concept, f"dropped {_describe(target)}")
    if category == "location":
        ai[index], detail = _move(rng, target, spec, body_part)
        return Perturbation("location", target.concept, detail)
    if category == "severity":
        if target.size_mm is not None:
            new_size = _resize(rng, target.size_mm)
            ai[index] = replace(target, size_mm=new_size)
            return Perturbation("severity", target.concept, f"{target.size_mm} mm -> {new_size} mm")
        assert target.severity is not None
        others = [s for s in pattern.severities if s != target.severity]
        # Prefer the far end of the scale: 'small' read as 'large' is the error that matters.
        new_severity = max(
            others, key=lambda s: abs(pattern.severities.index(s) - pattern.severities.index(target.severity))
        )
        ai[index] = replace(target, severity=new_severity)
        return Perturbation("severity", target.concept, f"{target.severity} -> {new_severity}")
    if category == "comparison_added":
        invented_change = rng.choice(_CHANGES_WITH_TREND)
        ai[index] = replace(target, change=invented_change, critical=is_critical(pattern, invented_change))
        return Perturbation("comparison_added", target.concept, f"no comparison -> {invented_change}")
    if category == "comparison_omitted":
        ai[index] = replace(target, change=None, critical=is_critical(pattern, None))
        return Perturbation("comparison_omitted", target.concept, f"{target.change} -> no comparison")
    if category == "certainty":
        flipped = "definite" if target.certainty == "possible" else "possible"
        ai[index] = replace(target, certainty=flipped)
        return Perturbation("certainty", target.concept, f"{target.certainty} -> {flipped}")
    raise ValueError(category)


def perturb(
    rng: random.Random,
    findings: Sequence[Finding],
    spec: SpecialtyCatalog,
    *,
    modality: str,
    body_part: str,
    side: str | None,
    has_prior: bool,
) -> tuple[tuple[Finding, ...], tuple[Perturbation, ...]]:
    """The AI's view of the study: the true findings, or a copy with one or two labelled errors.

    Each perturbation touches a different concept, so every label names exactly one discrepancy.
    """
    rate = _PERTURB_RATE_NORMAL if not findings else _PERTURB_RATE_ABNORMAL
    if rng.random() >= rate:
        return tuple(findings), ()
    count = 2 if rng.random() < TWO_PERTURBATIONS_RATE else 1
    candidates = compatible_patterns(spec, modality, body_part)
    ai = list(findings)
    used: set[str] = set()
    labels: list[Perturbation] = []
    for _ in range(count):
        options = []
        for category, weight in _CATEGORY_WEIGHTS.items():
            targets = _eligible(category, findings, spec, candidates, has_prior, body_part, used)
            if targets:
                options.append((category, weight, targets))
        if not options:
            break
        category, _, targets = weighted_choice(rng, options, [w for _, w, _ in options])
        target = rng.choice(targets)
        label = _apply(rng, category, target, ai, spec, body_part=body_part, side=side)
        used.add(label.concept)
        labels.append(label)
    return tuple(ai), tuple(labels)
