"""Building a whole synthetic department from ``(studies, seed)``.

Determinism is the contract: the same arguments give byte-identical output on any machine. Hence only
``random.Random`` instances seeded with strings (Python hashes a str seed with SHA-512, independent of
``PYTHONHASHSEED``), no iteration over sets, no clock. Each study draws from its own generator, seeded
by its index, so changing how one study is worded never shifts the next.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .catalog import Catalog, Pattern, Protocol, SpecialtyCatalog, load_catalog
from .findings import perturb, true_findings, weighted_choice
from .models import (
    SPECIALTIES,
    Department,
    Finding,
    PatientRecord,
    Radiologist,
    ReportStyle,
    StudyRecord,
)
from .render import CriticalCall, PriorContext, render_ai_draft, render_signed_sections, render_signed_text

# A root for synthetic UIDs only; nothing real is ever issued under it.
UID_ROOT = "1.2.826.0.1.3680043.10.1234."
PERIOD_START = datetime(2025, 1, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 10, 31, 23, 59, tzinfo=UTC)
MAX_SEED = 10**12  # keeps every UID well inside DICOM's 64 characters
MAX_STUDIES = 1_000_000

_NAMESPACE = "concordance.synthetic.v1"
_FOLLOW_UP_RATE = 0.30  # chance a study continues an earlier patient/body-part track (so has a prior)
_RETURNING_PATIENT_RATE = 0.25  # chance a fresh track belongs to a patient already seen

_RADIOLOGIST_POOL = (
    ("Amara", "Okafor"),
    ("Henrik", "Lindqvist"),
    ("Yuki", "Tanaka"),
    ("Claire", "Moreau"),
    ("Samir", "Haddad"),
    ("Petra", "Novak"),
    ("Diego", "Castillo"),
    ("Siobhan", "Brennan"),
    ("Ravi", "Iyer"),
    ("Kwame", "Mensah"),
)
# Family names are glued from parts no real family carries, so nobody mistakes them for PHI.
_FAMILY_HEADS = tuple("Mock Faux Synth Demo Sample Proxy Stub Dummy Pseudo Fictio Placebo".split())
_FAMILY_TAILS = tuple("ridge wood field ton ley worth brook more dale hurst combe well".split())
_GIVEN_NAMES = {
    "F": tuple("Ada Beatrix Clara Delphine Edith Flora Greta Hazel Iris Juno Lena Mira".split()),
    "M": tuple("Arlo Bram Cyrus Dmitri Elio Felix Gideon Hugo Ivo Jasper Milo Otto".split()),
    "O": tuple("Alex Quinn Robin Sasha Kai Rowan".split()),
}
_PRIORITIES = ("routine", "urgent", "stat")
_PRIORITY_WEIGHTS = (0.7, 0.2, 0.1)
# Minutes from acquisition to signature, by priority: stat reads are fast, routine ones wait.
_SIGN_DELAY_MINUTES = {"stat": (10, 60), "urgent": (30, 240), "routine": (60, 2880)}


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(":".join([_NAMESPACE, str(seed), *map(str, parts)]))


def _iso(moment: datetime) -> str:
    return moment.isoformat()


# --------------------------------------------------------------------------------------------- people


def _make_radiologists(rng: random.Random) -> tuple[Radiologist, ...]:
    count = rng.randint(6, 8)
    chosen = sorted(rng.sample(_RADIOLOGIST_POOL, count), key=lambda name: name[1])
    radiologists = []
    for i, (first, last) in enumerate(chosen):
        # Round-robin the primary specialty so every specialty has a reader; add one more at random.
        primary = SPECIALTIES[i % len(SPECIALTIES)]
        secondary = rng.choice([s for s in SPECIALTIES if s != primary])
        specialties = tuple(s for s in SPECIALTIES if s in (primary, secondary))
        style = ReportStyle(
            verbosity=rng.choice(("terse", "verbose")),
            negation=rng.choice(("no", "there_is_no", "no_evidence_of")),
            numbered_impressions=rng.random() < 0.6,
            size_unit=rng.choice(("mm", "cm")),
            hedge_rate=rng.choice((0.04, 0.08, 0.12, 0.2)),
            hedge_phrase=rng.choice(("possible", "cannot exclude", "suspicious for", "questionable")),
            header_case=rng.choice(("upper", "title")),
            indication_header=rng.choice(("indication", "clinical history")),
            uses_abbreviations=rng.random() < 0.5,
            date_format=rng.choice(("iso", "us")),
        )
        radiologists.append(
            Radiologist(
                username=f"dr_{last.lower()}",
                first_name=first,
                last_name=last,
                specialties=specialties,  # type: ignore[arg-type]
                style=style,
            )
        )
    return tuple(radiologists)


def _synthetic_family_name(rng: random.Random) -> str:
    return rng.choice(_FAMILY_HEADS) + rng.choice(_FAMILY_TAILS)


def _make_referrers(rng: random.Random) -> tuple[str, ...]:
    names: list[str] = []
    while len(names) < 12:
        given = rng.choice(_GIVEN_NAMES["F"] + _GIVEN_NAMES["M"])
        name = f"{given} {_synthetic_family_name(rng)}"
        if name not in names:
            names.append(name)
    return tuple(names)


class _PatientFactory:
    """Issues patients with unique random MRNs, remembering them in creation order."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.patients: list[PatientRecord] = []
        self._mrns: set[str] = set()

    def new(self, *, sex: str | None = None) -> int:
        rng = self.rng
        sex = sex or weighted_choice(rng, ("F", "M", "O"), (0.5, 0.48, 0.02))
        while True:
            mrn = f"MRN{rng.randrange(10_000_000, 100_000_000)}"
            if mrn not in self._mrns:
                break
        self._mrns.add(mrn)
        birth = datetime(1935, 1, 1) + timedelta(days=rng.randrange(365 * 71))
        self.patients.append(
            PatientRecord(
                mrn=mrn,
                family_name=_synthetic_family_name(rng),
                given_name=rng.choice(_GIVEN_NAMES[sex]),
                birth_date=birth.date().isoformat(),
                sex=sex,  # type: ignore[arg-type]
            )
        )
        return len(self.patients) - 1


# ------------------------------------------------------------------------------------------- schedule


@dataclass(frozen=True, slots=True)
class _Slot:
    """One study before it has content: who, what, when, and which earlier study it follows."""

    index: int
    when: datetime
    patient_index: int
    specialty: SpecialtyCatalog
    protocol: Protocol
    side: str | None
    prior_index: int | None
    radiologist: Radiologist
    referring_physician: str
    priority: str


def _schedule(
    rng: random.Random,
    catalog: Catalog,
    studies: int,
    radiologists: tuple[Radiologist, ...],
    referrers: tuple[str, ...],
    patients: _PatientFactory,
) -> list[_Slot]:
    """Decide every study's patient, protocol, time and prior, in chronological order.

    Studies form tracks (one patient, one body part, one side); a follow-up continues a track, so its
    prior is the track's latest study, which is always earlier because times are drawn distinct and
    handed out in sorted order.
    """
    total_minutes = int((PERIOD_END - PERIOD_START).total_seconds() // 60) + 1
    minutes = sorted(rng.sample(range(total_minutes), studies))
    specs = catalog.specialties
    tracks: list[list[Any]] = []  # [patient_index, specialty, body_part, side, last_index]
    track_by_key: dict[tuple[int, str, str, str | None], list[Any]] = {}
    slots: list[_Slot] = []
    for index, minute in enumerate(minutes):
        prior_index: int | None = None
        if tracks and rng.random() < _FOLLOW_UP_RATE:
            track = rng.choice(tracks)
            patient_index, spec, body_part, side, prior_index = track
            same_part = [p for p in spec.protocols if p.body_part == body_part]
            protocol = weighted_choice(rng, same_part, [p.weight for p in same_part])
        else:
            spec = weighted_choice(rng, specs, [s.weight for s in specs])
            protocol = weighted_choice(rng, spec.protocols, [p.weight for p in spec.protocols])
            # Breast imaging in this department is of women only: keeps the demo mix plausible.
            needed_sex = "F" if spec.name == "breast" else None
            patient_index = -1
            if patients.patients and rng.random() < _RETURNING_PATIENT_RATE:
                candidate = rng.randrange(len(patients.patients))
                if needed_sex is None or patients.patients[candidate].sex == needed_sex:
                    patient_index = candidate
            if patient_index < 0:
                patient_index = patients.new(sex=needed_sex)
            side = rng.choice(("left", "right")) if protocol.sided else None
            key = (patient_index, spec.name, protocol.body_part, side)
            track = track_by_key.get(key)
            if track is None:
                track = [patient_index, spec, protocol.body_part, side, index]
                track_by_key[key] = track
                tracks.append(track)
            else:
                prior_index = track[4]  # the same patient and body part again: it has a prior
        track[4] = index
        readers = [r for r in radiologists if spec.name in r.specialties]
        slots.append(
            _Slot(
                index=index,
                when=PERIOD_START + timedelta(minutes=minute),
                patient_index=patient_index,
                specialty=spec,
                protocol=protocol,
                side=side,
                prior_index=prior_index,
                radiologist=rng.choice(readers),
                referring_physician=rng.choice(referrers),
                priority=weighted_choice(rng, _PRIORITIES, _PRIORITY_WEIGHTS),
            )
        )
    return slots


# -------------------------------------------------------------------------------------------- studies


def _indication(rng: random.Random, protocol: Protocol, prior: StudyRecord | None) -> str:
    """Why the study was asked for: often the follow-up of a known finding, else the protocol's reasons."""
    known = [f for f in prior.true_findings if f.change != "resolved"] if prior else []
    if known and rng.random() < 0.4:
        return f"Follow-up of known {known[0].display}."
    return rng.choice(protocol.indications)


def _negatives(
    rng: random.Random, catalog: Catalog, protocol: Protocol, style: Any, findings: list[Finding]
) -> list[Pattern]:
    """Pertinent negatives: what the reader states as absent (all of them when verbose, else one or two).

    The AI is given the same checklist, so the draft repeats them except where its own (perturbed)
    findings contradict them.
    """
    present = {f.concept for f in findings}
    candidates = [catalog.pattern(c) for c in protocol.negatives if c not in present]
    keep = len(candidates) if style.verbosity == "verbose" else min(len(candidates), rng.randint(1, 2))
    return [candidates[i] for i in sorted(rng.sample(range(len(candidates)), keep))]


def _ai_findings(ai_findings: list[Finding], negatives: list[Pattern]) -> dict[str, Any]:
    """The findings and negatives the AI draft is written from (negatives its findings contradict dropped)."""
    ai_concepts = {f.concept for f in ai_findings}
    return {
        "findings": [f.to_dict() for f in ai_findings],
        "negatives": [
            {"concept": p.concept, "display": p.display} for p in negatives if p.concept not in ai_concepts
        ],
    }


def _signing(
    rng: random.Random, slot: _Slot, findings: list[Finding]
) -> tuple[datetime, CriticalCall | None]:
    """When the report is signed (a delay by priority) and, for a critical finding, the call made first."""
    low, high = _SIGN_DELAY_MINUTES[slot.priority]
    delay = rng.randint(low, high)
    signed_at = slot.when + timedelta(minutes=delay)
    if not any(f.critical for f in findings):
        return signed_at, None
    called = signed_at - timedelta(minutes=rng.randint(1, min(9, delay - 1)))
    return signed_at, CriticalCall(
        physician_last_name=slot.referring_physician.rsplit(" ", 1)[1],
        time=called.strftime("%H:%M"),
        date=called.date().isoformat(),
    )


def _prior_context(prior: StudyRecord | None) -> PriorContext | None:
    """What the reader compares with: the prior study's date, description, modality and sizes."""
    if prior is None:
        return None
    return PriorContext(
        date=prior.study_datetime[:10],
        description=prior.description,
        modality=prior.modality,
        sizes_mm={f.concept: f.size_mm for f in prior.true_findings if f.size_mm is not None},
    )


def _build_study(
    seed: int, slot: _Slot, catalog: Catalog, patient: PatientRecord, prior: StudyRecord | None
) -> StudyRecord:
    rng = _rng(seed, "study", slot.index)
    spec, protocol, style = slot.specialty, slot.protocol, slot.radiologist.style
    findings = true_findings(
        rng,
        spec,
        modality=protocol.modality,
        body_part=protocol.body_part,
        side=slot.side,
        prior_findings=prior.true_findings if prior else None,
        hedge_rate=style.hedge_rate,
    )
    indication = _indication(rng, protocol, prior)
    negatives = _negatives(rng, catalog, protocol, style, findings)

    ai_findings, perturbations = perturb(
        rng,
        findings,
        spec,
        modality=protocol.modality,
        body_part=protocol.body_part,
        side=slot.side,
        has_prior=prior is not None,
    )
    description = protocol.description.format(SIDE=slot.side.upper()) if slot.side else protocol.description
    ai_inputs = {
        "indication": indication,
        "specialty": spec.name,
        "modality": protocol.modality,
        "body_part": protocol.body_part,
        "study_description": description,
        "prior_report_accession": prior.accession_number if prior else None,
        **_ai_findings(ai_findings, negatives),
    }
    signed_at, critical_call = _signing(rng, slot, findings)
    sections = render_signed_sections(
        rng,
        style=style,
        spec=spec,
        catalog=catalog,
        modality=protocol.modality,
        body_part=protocol.body_part,
        indication=indication,
        findings=findings,
        negatives=negatives,
        prior=_prior_context(prior),
        critical_call=critical_call,
    )
    return StudyRecord(
        study_instance_uid=f"{UID_ROOT}{seed}.{slot.index + 1}",
        accession_number=f"SYN{seed % 10_000:04d}{slot.index + 1:06d}",
        patient_mrn=patient.mrn,
        modality=protocol.modality,  # type: ignore[arg-type]
        body_part=protocol.body_part,
        laterality=slot.side,  # type: ignore[arg-type]
        specialty=spec.name,  # type: ignore[arg-type]
        study_datetime=_iso(slot.when),
        description=description,
        priority=slot.priority,  # type: ignore[arg-type]
        referring_physician=slot.referring_physician,
        radiologist=slot.radiologist.username,
        indication=indication,
        prior_accession=prior.accession_number if prior else None,
        true_findings=findings,
        signed_sections=sections,
        signed_text=render_signed_text(sections, style),
        signed_at=_iso(signed_at),
        ai_inputs=ai_inputs,
        ai_draft_text=render_ai_draft(ai_inputs, catalog),
        perturbations=perturbations,
        patient=patient,
    )


def generate_department(*, studies: int, seed: int) -> Department:
    """A synthetic radiology department with ``studies`` studies, fully determined by ``seed``.

    6-8 radiologists with distinct report styles; patients with obviously artificial names; studies in
    chronological order from 2025-01-01 to 2026-10-31 (UTC), about a third with a prior of the same
    patient and body part; about 70% of AI drafts faithful and the rest carrying one or two labelled
    perturbations. ``seed`` must be in ``[0, 10**12)`` (it is part of every UID).
    """
    if not 0 <= seed < MAX_SEED:
        raise ValueError(f"seed must be in [0, {MAX_SEED})")
    if not 0 <= studies <= MAX_STUDIES:
        raise ValueError(f"studies must be in [0, {MAX_STUDIES}]")
    catalog = load_catalog()
    rng = _rng(seed, "department")
    radiologists = _make_radiologists(rng)
    referrers = _make_referrers(rng)
    patients = _PatientFactory(rng)
    slots = _schedule(rng, catalog, studies, radiologists, referrers, patients)
    built: list[StudyRecord] = []
    for slot in slots:
        prior = built[slot.prior_index] if slot.prior_index is not None else None
        built.append(_build_study(seed, slot, catalog, patients.patients[slot.patient_index], prior))
    return Department(
        seed=seed,
        radiologists=radiologists,
        patients=tuple(patients.patients),
        studies=tuple(built),
    )


def labelled_pairs(department: Department) -> Iterator[dict[str, Any]]:
    """Evaluation pairs for the discrepancy engine, one per study, in study order.

    Each is ``{"id": accession, "candidate": ai_draft_text, "reference": signed_text,
    "expected": [{"category": ..., "finding": concept_id}, ...]}``; ``expected`` is empty when the
    draft is faithful.
    """
    for study in department.iter_studies():
        yield {
            "id": study.accession_number,
            "candidate": study.ai_draft_text,
            "reference": study.signed_text,
            "expected": [{"category": p.category, "finding": p.concept} for p in study.perturbations],
        }
