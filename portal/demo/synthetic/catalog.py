"""The finding patterns and study protocols of the synthetic department, loaded from ``patterns.json``.

The JSON is the one place a clinician would edit to change what the department sees; this module turns
it into typed, validated objects so that a typo fails loudly at load time rather than producing
nonsense reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .models import MODALITIES, SPECIALTIES

PATTERNS_PATH = Path(__file__).with_name("patterns.json")

_SIDES = ("left", "right", "bilateral")
_SEVERITIES = ("mild", "moderate", "severe", "small", "large")
_COUNTS = ("count", "mass", "plural")


@dataclass(frozen=True, slots=True)
class Pattern:
    """A kind of finding: how it is named, where it occurs, how big or bad it gets, what sees it."""

    concept: str
    specialty: str
    display: str
    plural: str
    synonyms: tuple[str, ...]
    abbreviation: str | None
    negative_phrase: str
    modalities: tuple[str, ...]
    body_parts: tuple[str, ...] | None  # None: every body part of the specialty
    lateralities: tuple[str, ...]
    locations: tuple[str, ...]
    locations_by_body_part: tuple[tuple[str, tuple[str, ...]], ...]
    location_prep: str
    size_mm: tuple[int, int] | None
    severities: tuple[str, ...]
    critical: bool
    chronic: bool  # never resolves at follow-up (a cyst, an aneurysm, emphysema)
    region: str
    count: str
    weight: float

    def location_templates(self, body_part: str) -> tuple[str, ...]:
        """Location templates valid for this body part (``{side}`` still to fill in)."""
        for part, templates in self.locations_by_body_part:
            if part == body_part:
                return templates
        return self.locations

    def applies_to(self, modality: str, body_part: str) -> bool:
        """Whether this finding can be seen on a study of this modality and body part."""
        if modality not in self.modalities:
            return False
        if self.locations_by_body_part:
            return any(part == body_part for part, _ in self.locations_by_body_part)
        return self.body_parts is None or body_part in self.body_parts

    @property
    def terms(self) -> tuple[str, ...]:
        """Every name a report may use for this finding."""
        names = (self.display, *self.synonyms)
        return names + ((self.abbreviation,) if self.abbreviation else ())


@dataclass(frozen=True, slots=True)
class Protocol:
    """An orderable examination: modality, body part, description and what a reader always comments on.

    ``description`` may contain ``{SIDE}`` for one-sided examinations (``sided``).
    """

    specialty: str
    modality: str
    body_part: str
    description: str
    weight: float
    sided: bool
    negatives: tuple[str, ...]  # concepts stated as absent when absent (pertinent negatives)
    indications: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NormalStatement:
    """A sentence a verbose reader writes about a normal region ("The heart size is normal.")."""

    region: str
    text: str
    modalities: tuple[str, ...] | None
    body_parts: tuple[str, ...] | None

    def applies_to(self, modality: str, body_part: str) -> bool:
        """Whether the statement makes sense on this kind of study."""
        return (self.modalities is None or modality in self.modalities) and (
            self.body_parts is None or body_part in self.body_parts
        )


@dataclass(frozen=True, slots=True)
class SpecialtyCatalog:
    """Everything one specialty contributes: mix weight, normal rate, protocols, patterns."""

    name: str
    weight: float
    normal_rate: float
    normal_impressions: tuple[str, ...]
    protocols: tuple[Protocol, ...]
    normal_statements: tuple[NormalStatement, ...]
    patterns: tuple[Pattern, ...]


@dataclass(frozen=True, slots=True)
class Catalog:
    """All specialties, in the fixed order of :data:`SPECIALTIES` (order matters for determinism)."""

    specialties: tuple[SpecialtyCatalog, ...]
    by_concept: dict[str, Pattern] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.by_concept.update((p.concept, p) for spec in self.specialties for p in spec.patterns)

    def specialty(self, name: str) -> SpecialtyCatalog:
        """The specialty called ``name``; ``KeyError`` if unknown."""
        for spec in self.specialties:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def pattern(self, concept: str) -> Pattern:
        """The pattern of a concept id (ids are unique across specialties); ``KeyError`` if unknown."""
        return self.by_concept[concept]

    @property
    def patterns(self) -> tuple[Pattern, ...]:
        """Every pattern of every specialty."""
        return tuple(p for spec in self.specialties for p in spec.patterns)


@cache
def load_catalog(path: Path = PATTERNS_PATH) -> Catalog:
    """Load and validate the catalog (cached: the file is read once per process)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    specialties = tuple(_specialty(name, raw["specialties"][name]) for name in SPECIALTIES)
    catalog = Catalog(specialties=specialties)
    _validate(catalog)
    return catalog


def _tuple_or_none(value: list[str] | None) -> tuple[str, ...] | None:
    return tuple(value) if value is not None else None


def _specialty(name: str, raw: dict[str, Any]) -> SpecialtyCatalog:
    protocols = tuple(
        Protocol(
            specialty=name,
            modality=p["modality"],
            body_part=p["body_part"],
            description=p["description"],
            weight=float(p["weight"]),
            sided=bool(p.get("sided", False)),
            negatives=tuple(p["negatives"]),
            indications=tuple(p["indications"]),
        )
        for p in raw["protocols"]
    )
    statements = tuple(
        NormalStatement(
            region=s["region"],
            text=s["text"],
            modalities=_tuple_or_none(s.get("modalities")),
            body_parts=_tuple_or_none(s.get("body_parts")),
        )
        for s in raw["normal_statements"]
    )
    patterns = tuple(_pattern(name, p) for p in raw["patterns"])
    return SpecialtyCatalog(
        name=name,
        weight=float(raw["weight"]),
        normal_rate=float(raw["normal_rate"]),
        normal_impressions=tuple(raw["normal_impressions"]),
        protocols=protocols,
        normal_statements=statements,
        patterns=patterns,
    )


def _pattern(specialty: str, p: dict[str, Any]) -> Pattern:
    by_part = p.get("locations_by_body_part") or {}
    size = p.get("size_mm")
    return Pattern(
        concept=p["concept"],
        specialty=specialty,
        display=p["display"],
        plural=p.get("plural", p["display"] + "s"),
        synonyms=tuple(p.get("synonyms", ())),
        abbreviation=p.get("abbreviation"),
        negative_phrase=p.get("negative_phrase", p["display"]),
        modalities=tuple(p["modalities"]),
        body_parts=_tuple_or_none(p.get("body_parts")),
        lateralities=tuple(p.get("lateralities", ())),
        locations=tuple(p.get("locations", ())),
        # JSON object order is file order; sort so the catalog never depends on how it was typed.
        locations_by_body_part=tuple((part, tuple(by_part[part])) for part in sorted(by_part)),
        location_prep=p.get("location_prep", "in the"),
        size_mm=(int(size[0]), int(size[1])) if size else None,
        severities=tuple(p.get("severities", ())),
        critical=bool(p.get("critical", False)),
        chronic=bool(p.get("chronic", False)),
        region=p["region"],
        count=p.get("count", "count"),
        weight=float(p.get("weight", 1.0)),
    )


def _validate(catalog: Catalog) -> None:
    """Reject a catalog that would produce reports the generator cannot word consistently."""
    seen: set[str] = set()
    for spec in catalog.specialties:
        concepts = {p.concept for p in spec.patterns}
        for pattern in spec.patterns:
            where = f"{spec.name}/{pattern.concept}"
            if pattern.concept in seen:
                raise ValueError(f"{where}: concept ids must be unique across specialties")
            seen.add(pattern.concept)
            if not set(pattern.modalities) <= set(MODALITIES):
                raise ValueError(f"{where}: unknown modality in {pattern.modalities}")
            if not set(pattern.lateralities) <= set(_SIDES):
                raise ValueError(f"{where}: unknown laterality in {pattern.lateralities}")
            if not set(pattern.severities) <= set(_SEVERITIES):
                raise ValueError(f"{where}: unknown severity in {pattern.severities}")
            if pattern.count not in _COUNTS:
                raise ValueError(f"{where}: count must be one of {_COUNTS}")
            if pattern.size_mm and not 0 < pattern.size_mm[0] <= pattern.size_mm[1]:
                raise ValueError(f"{where}: bad size range {pattern.size_mm}")
            templates = pattern.locations + tuple(t for _, ts in pattern.locations_by_body_part for t in ts)
            # The side is worded into the location: either every template carries it or none does,
            # so that flipping a side (a 'location' perturbation) always changes the text.
            sided = bool(set(pattern.lateralities) - {"bilateral"})
            for template in templates:
                if ("{side}" in template) != sided:
                    raise ValueError(f"{where}: template {template!r} disagrees with lateralities")
            if not any(p.modality in pattern.modalities for p in spec.protocols):
                raise ValueError(f"{where}: no protocol of {spec.name} can show it")
        for protocol in spec.protocols:
            if protocol.modality == "MG" and protocol.body_part != "BREAST":
                raise ValueError(f"{spec.name}: mammography is for the breast only")
            if protocol.sided != ("{SIDE}" in protocol.description):
                raise ValueError(f"{spec.name}: {protocol.description!r} sided flag disagrees")
            unknown = set(protocol.negatives) - concepts
            if unknown:
                raise ValueError(f"{spec.name}: {protocol.description} negates unknown {sorted(unknown)}")
            if len(protocol.negatives) < 2 or not protocol.indications:
                raise ValueError(f"{spec.name}: {protocol.description} needs 2 negatives and indications")
