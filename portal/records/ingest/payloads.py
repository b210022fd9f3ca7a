"""Neutral payloads: what every ingestion adapter produces and ``records.services`` consumes.

The HL7 v2, FHIR and DICOM adapters (``hl7.py``, ``fhir.py``, ``dicom.py``) each speak one wire
standard and translate it into the frozen dataclasses below, so the service layer never sees a
segment, a resource or a data element. Nothing here imports Django: these are plain values that can
be built in tests, pickled into Celery messages and compared with ``==``.

Conventions shared by all adapters:

* Datetimes are timezone-aware and normalised to UTC.
* Person names for physicians are rendered ``"Family, Given"`` (or just the one part present);
  patient names are split into ``family_name`` / ``given_name``.
* ``sex`` is one of ``M`` (male), ``F`` (female), ``O`` (other), ``U`` (unknown).
* ``priority`` is one of ``routine``, ``urgent``, ``stat``.
* Empty strings mean "not supplied": the service layer should not overwrite a known value with "".

Every validation problem is raised as :class:`AdapterError` with a short machine ``code``, a human
``message`` that never quotes patient data, and a ``location`` in the vocabulary of the standard
(``"OBR-3"``, ``"DiagnosticReport.status"``, ``"(0020,000D) StudyInstanceUID"``), so each transport
can map it to its own error reply (HL7 ACK ``ERR``, FHIR ``OperationOutcome``, HTTP 400).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime

__all__ = [
    "AI_OUTPUT_KINDS",
    "CONFLICT",
    "DUPLICATE",
    "INVALID_VALUE",
    "MALFORMED",
    "MAX_BODY_PART_CHARS",
    "MAX_DESCRIPTION_CHARS",
    "MAX_ID_CHARS",
    "MAX_NAME_CHARS",
    "MAX_REPORT_CHARS",
    "MISSING_FIELD",
    "NOT_FOUND",
    "PRIORITIES",
    "REPORT_SECTIONS",
    "SEXES",
    "SIGNED_REPORT_STATUSES",
    "TOO_LARGE",
    "UNSUPPORTED",
    "AIOutputPayload",
    "AdapterError",
    "ClinicianPayload",
    "PatientPayload",
    "SignedReportPayload",
    "StudyPayload",
    "clean_text",
    "infer_body_part",
    "infer_modality",
    "infer_specialty",
    "split_sections",
]

# --- error codes --------------------------------------------------------------------------------
# The adapters raise the first five; the last three are reserved for the service layer so that the
# HL7 and FHIR error mappings (``hl7_ack.ERR_CODES``, ``fhir_outcome.ISSUE_CODES``) already know them.
MALFORMED = "malformed"  # not parseable / wrong data type / control characters
UNSUPPORTED = "unsupported"  # well formed but something we deliberately do not accept
MISSING_FIELD = "missing_field"  # a required field is absent or empty
TOO_LARGE = "too_large"  # message, file or text over its size limit
INVALID_VALUE = "invalid_value"  # a coded value outside its value set (e.g. a bad status)
DUPLICATE = "duplicate"  # service layer: the same record was already ingested
CONFLICT = "conflict"  # service layer: contradicts a stored record
NOT_FOUND = "not_found"  # service layer: referenced study/report does not exist

# Field length limits shared by every adapter, matching the columns that store them, so that a
# value accepted on the wire always fits the database (longer values raise ``too_large``).
MAX_ID_CHARS = 64  # MRN, accession number, Study Instance UID, model version
MAX_NAME_CHARS = 128  # patient family / given name, model name, usernames
MAX_DESCRIPTION_CHARS = 256  # study description, referring physician
MAX_BODY_PART_CHARS = 64
MAX_REPORT_CHARS = 200_000  # report and AI output text

SEXES = frozenset({"M", "F", "O", "U"})
PRIORITIES = frozenset({"routine", "urgent", "stat"})
AI_OUTPUT_KINDS = frozenset({"report_draft", "history_summary", "prior_comparison", "patient_letter"})
SIGNED_REPORT_STATUSES = frozenset({"final", "addendum", "correction"})
REPORT_SECTIONS = ("indication", "technique", "comparison", "findings", "impression")


class AdapterError(Exception):
    """A message, resource or file that an adapter refuses, with where and why.

    ``code`` is one of the module-level codes (``malformed``, ``unsupported``, ``missing_field``,
    ``too_large``, ``invalid_value``; services may add ``duplicate``, ``conflict``, ``not_found``).
    ``message`` is safe to show to the sending system: it names fields, never their values, so it
    can be logged and echoed in an ACK without leaking PHI. ``location`` is a field path in the
    standard's own notation, or "" when the whole input is at fault.
    """

    def __init__(self, code: str, message: str, location: str = "") -> None:
        # Passing every argument to Exception keeps the error picklable (Celery, multiprocessing).
        super().__init__(code, message, location)
        self.code = code
        self.message = message
        self.location = location

    def __str__(self) -> str:
        where = f" at {self.location}" if self.location else ""
        return f"{self.code}: {self.message}{where}"


# --- payloads -----------------------------------------------------------------------------------
def _check_aware(value: datetime | None, name: str) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be timezone-aware")


@dataclass(frozen=True)
class PatientPayload:
    """A patient as identified by the sending system.

    ``mrn`` is the medical record number of the sending facility, the only key the service layer
    matches on. Names may be empty when the sender only gave an identifier (FHIR reference by
    identifier); the service must then keep the names it already has.
    """

    mrn: str
    family_name: str
    given_name: str
    birth_date: date | None
    sex: str  # 'M', 'F', 'O' or 'U'

    def __post_init__(self) -> None:
        if not self.mrn:
            raise ValueError("mrn must not be empty")
        if self.sex not in SEXES:
            raise ValueError(f"sex must be one of {sorted(SEXES)}")


@dataclass(frozen=True)
class StudyPayload:
    """An imaging study (one accession) and the patient it belongs to.

    ``study_instance_uid`` is the DICOM UID when the sender knows it (always for DICOM, optionally
    for HL7); ``accession_number`` is the RIS key that ties the study to its reports ("" for an
    unscheduled or outside study that the PACS sent without one; the UID is then required).
    ``modality`` is a DICOM modality code (``CT``, ``MR``, ``CR``, ``DX``, ``US``, ``MG``, ``NM``,
    ``PT``, ``XA``, ``RF``; ``OT`` when it could not be determined). ``body_part`` is an upper-case
    DICOM-style body part (``CHEST``, ``HEAD``, ...) or "". ``specialty`` is one of ``chest``,
    ``neuro``, ``breast``, ``abdominal``, ``musculoskeletal`` or None (see :func:`infer_specialty`).
    ``dicom_header`` holds JSON-safe header values (keyword -> value) and is empty for non-DICOM
    sources.
    """

    study_instance_uid: str | None
    accession_number: str
    patient: PatientPayload
    modality: str
    body_part: str
    specialty: str | None
    study_datetime: datetime | None  # tz-aware UTC
    description: str
    priority: str  # 'routine', 'urgent' or 'stat'
    referring_physician: str
    dicom_header: dict[str, str | int | float | list] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.accession_number and not self.study_instance_uid:
            raise ValueError("a study needs an accession_number or a study_instance_uid")
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {sorted(PRIORITIES)}")
        _check_aware(self.study_datetime, "study_datetime")


@dataclass(frozen=True)
class AIOutputPayload:
    """Text generated by an AI model for a study (a draft report, a summary, a letter).

    ``inputs`` and ``generation_settings`` are whatever the sender disclosed (prompt inputs,
    temperature, ...), kept so that re-inference can reproduce the call; both may be empty.
    Token counts and latency are optional telemetry.
    """

    accession_number: str
    study_instance_uid: str | None
    kind: str  # 'report_draft', 'history_summary', 'prior_comparison' or 'patient_letter'
    model_name: str
    model_version: str
    inputs: dict
    generation_settings: dict
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float | None
    generated_at: datetime | None

    def __post_init__(self) -> None:
        if self.kind not in AI_OUTPUT_KINDS:
            raise ValueError(f"kind must be one of {sorted(AI_OUTPUT_KINDS)}")
        if not self.model_name or not self.model_version:
            raise ValueError("model_name and model_version must not be empty")
        _check_aware(self.generated_at, "generated_at")


@dataclass(frozen=True)
class ClinicianPayload:
    """A clinician as a sending system names them: the key and the name parts it sent.

    ``authority`` is the assigning authority of ``identifier`` (HL7 XCN-9, FHIR
    ``Identifier.system``, DICOM ``IssuerOfObserverID``... or, when the sender gives none, the sending
    facility); the pair is the clinician's key in the directory. Name parts may be empty.
    ``fhir_reference`` is set instead of a key when a FHIR report names a Practitioner posted earlier
    (``"Practitioner/123"``): the service layer resolves it.
    """

    authority: str
    identifier: str
    family_name: str = ""
    given_name: str = ""
    middle_name: str = ""
    prefix: str = ""
    suffix: str = ""
    fhir_reference: str = ""

    def __post_init__(self) -> None:
        if not self.fhir_reference and not (self.authority and self.identifier):
            raise ValueError("a clinician needs an authority and an identifier, or a FHIR reference")


@dataclass(frozen=True)
class SignedReportPayload:
    """A report signed by a radiologist: the reference an AI output is compared against.

    ``status`` is ``final`` for the first signature, ``addendum`` for text appended to a signed
    report and ``correction`` for a replacement. ``amends_report_id`` is the sender's id of the
    report being amended when the wire format carries it; when it is None the service layer
    matches the amended report by accession number.
    ``sections`` maps section names from :data:`REPORT_SECTIONS` to their text. The signer is
    ``signer`` (a clinician as the feed names them) or, for the portal's own REST API,
    ``radiologist_username`` (a portal account); one of the two is required.
    """

    accession_number: str
    study_instance_uid: str | None
    radiologist_username: str
    sections: dict[str, str]
    text: str
    signed_at: datetime
    status: str  # 'final', 'addendum' or 'correction'
    amends_report_id: str | None
    signer: ClinicianPayload | None = field(default=None, metadata={"omit_when_none": True})

    def __post_init__(self) -> None:
        if self.status not in SIGNED_REPORT_STATUSES:
            raise ValueError(f"status must be one of {sorted(SIGNED_REPORT_STATUSES)}")
        if not self.radiologist_username and self.signer is None:
            raise ValueError("a signed report needs a signer or a radiologist_username")
        _check_aware(self.signed_at, "signed_at")


# --- text helpers -------------------------------------------------------------------------------
# C0 controls other than TAB, LF and CR: they have no business in clinical text, break XML/PDF
# exports and NUL is refused outright by PostgreSQL text columns.
_FORBIDDEN_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")


def clean_text(s: str | bytes | None, *, max_len: int, location: str = "") -> str:
    """Return ``s`` as safe clinical text, or raise :class:`AdapterError`.

    Bytes are decoded as UTF-8 and None becomes "". C0 control characters other than tab, LF and
    CR are refused (``malformed``), line endings are normalised to LF and the text is NFC
    normalised so that the same words compare equal whatever the sender's composition was. Text
    longer than ``max_len`` characters is refused (``too_large``), never silently truncated.
    Markup and SQL are kept verbatim: escaping belongs to whoever renders the text.
    """
    if s is None:
        return ""
    if isinstance(s, bytes | bytearray | memoryview):
        try:
            s = bytes(s).decode("utf-8")
        except UnicodeDecodeError:
            raise AdapterError(MALFORMED, "text is not valid UTF-8", location) from None
    elif not isinstance(s, str):
        s = str(s)
    if _FORBIDDEN_CONTROLS.search(s):
        raise AdapterError(MALFORMED, "text contains control characters", location)
    if _SURROGATES.search(s):
        raise AdapterError(MALFORMED, "text contains unpaired surrogates", location)
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = unicodedata.normalize("NFC", s)
    if len(s) > max_len:
        raise AdapterError(TOO_LARGE, f"text longer than {max_len} characters", location)
    return s


# Header spellings seen in radiology reports, mapped to the five canonical sections. Longer
# alternatives come first so that "CLINICAL HISTORY" is not read as "HISTORY" plus leftovers.
_SECTION_ALIASES: dict[str, str] = {
    "clinical indication": "indication",
    "clinical indications": "indication",
    "clinical information": "indication",
    "clinical history": "indication",
    "clinical details": "indication",
    "reason for examination": "indication",
    "reason for exam": "indication",
    "indications": "indication",
    "indication": "indication",
    "history": "indication",
    "technique": "technique",
    "procedure": "technique",
    "protocol": "technique",
    "comparisons": "comparison",
    "comparison": "comparison",
    "findings": "findings",
    "finding": "findings",
    "report": "findings",
    "impressions": "impression",
    "impression": "impression",
    "conclusions": "impression",
    "conclusion": "impression",
    "opinion": "impression",
}
_HEADER_ALTERNATION = "|".join(
    re.escape(h).replace(r"\ ", r"\s+") for h in sorted(_SECTION_ALIASES, key=len, reverse=True)
)
# A header either stands alone on its line (colon or dash optional) or is followed by a colon
# or a spaced dash and inline text. Without one, inline text is refused as a header:
# "Impression of the tracheal wall..." is prose, not a section.
_HEADER_LINE = re.compile(
    rf"^[ \t]*(?P<header>{_HEADER_ALTERNATION})[ \t]*"
    rf"(?:(?::|-)?[ \t]*$|(?::|(?<=[ \t])-)[ \t]*(?P<rest>.*)$)",
    re.IGNORECASE,
)


def split_sections(text: str) -> dict[str, str]:
    """Split report text into indication / technique / comparison / findings / impression.

    Headers are matched case-insensitively at the start of a line, with or without a colon
    (``CLINICAL HISTORY`` and ``HISTORY`` count as indication, ``CONCLUSION`` as impression);
    text on the header's own line needs a colon or a spaced dash (``Technique - axial``).
    Text without any header is returned as ``{"findings": text}``. Text before the first header
    (usually the exam title) is kept under ``technique`` so nothing is lost. A header that occurs
    twice has its parts joined with a newline; empty sections are omitted.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    parts: dict[str, list[str]] = {}
    preamble: list[str] = []
    current: list[str] = preamble
    found = False
    for line in lines:
        match = _HEADER_LINE.match(line)
        if match:
            found = True
            key = _SECTION_ALIASES[" ".join(match.group("header").lower().split())]
            current = parts.setdefault(key, [])
            if current:
                current.append("")  # keep repeated sections visibly apart
            rest = match.group("rest")
            if rest:
                current.append(rest)
        else:
            current.append(line)
    if not found:
        stripped = text.strip()
        return {"findings": stripped} if stripped else {}
    pre = "\n".join(preamble).strip()
    if pre:
        parts.setdefault("technique", [])
        parts["technique"].insert(0, pre)
    sections = {key: "\n".join(value).strip() for key, value in parts.items()}
    return {key: sections[key] for key in REPORT_SECTIONS if sections.get(key)}


# --- vocabulary inference -----------------------------------------------------------------------
# Keyword -> DICOM modality, tried on whole words of a procedure description. Order matters only
# for descriptions that name two modalities ("PET/CT"), where the first entry wins.
_MODALITY_WORDS: tuple[tuple[str, str], ...] = (
    ("PET", "PT"),
    ("PT", "PT"),
    ("CT", "CT"),
    ("CTA", "CT"),
    ("MR", "MR"),
    ("MRI", "MR"),
    ("MRA", "MR"),
    ("MAMMO", "MG"),
    ("MAMMOGRAM", "MG"),
    ("MAMMOGRAPHY", "MG"),
    ("MG", "MG"),
    ("US", "US"),
    ("ULTRASOUND", "US"),
    ("DOPPLER", "US"),
    ("DX", "DX"),
    ("XR", "CR"),
    ("CR", "CR"),
    ("XRAY", "CR"),
    ("X-RAY", "CR"),
    ("RADIOGRAPH", "CR"),
    ("RADIOGRAPHY", "CR"),
    ("NM", "NM"),
    ("NUCLEAR", "NM"),
    ("XA", "XA"),
    ("ANGIO", "XA"),
    ("ANGIOGRAPHY", "XA"),
    ("RF", "RF"),
    ("FLUORO", "RF"),
    ("FLUOROSCOPY", "RF"),
)
_MODALITY_BY_WORD = dict(_MODALITY_WORDS)
_WORDS = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)?")


def infer_modality(description: str) -> str:
    """Guess the DICOM modality code from a procedure description such as ``"CT CHEST W/O"``.

    Returns ``"OT"`` (DICOM "other") when no known modality word appears.
    """
    words = _WORDS.findall(description.upper())
    for word in words:
        for part in (word, *word.split("-")):
            if part in _MODALITY_BY_WORD:
                return _MODALITY_BY_WORD[part]
    return "OT"


# Keyword -> DICOM BodyPartExamined term; whole words, first match wins.
_BODY_PART_WORDS: dict[str, str] = {
    "CHEST": "CHEST",
    "THORAX": "CHEST",
    "THORACIC": "CHEST",
    "LUNG": "LUNG",
    "LUNGS": "LUNG",
    "PULMONARY": "CHEST",
    "CXR": "CHEST",
    "HEAD": "HEAD",
    "BRAIN": "BRAIN",
    "SKULL": "SKULL",
    "NECK": "NECK",
    "SPINE": "SPINE",
    "CSPINE": "CSPINE",
    "LSPINE": "LSPINE",
    "TSPINE": "TSPINE",
    "BREAST": "BREAST",
    "BREASTS": "BREAST",
    "MAMMO": "BREAST",
    "MAMMOGRAM": "BREAST",
    "ABDOMEN": "ABDOMEN",
    "ABDOMINAL": "ABDOMEN",
    "ABD": "ABDOMEN",
    "PELVIS": "PELVIS",
    "PELVIC": "PELVIS",
    "LIVER": "LIVER",
    "KIDNEY": "KIDNEY",
    "KIDNEYS": "KIDNEY",
    "RENAL": "KIDNEY",
    "PANCREAS": "PANCREAS",
    "KNEE": "KNEE",
    "SHOULDER": "SHOULDER",
    "HIP": "HIP",
    "ANKLE": "ANKLE",
    "FOOT": "FOOT",
    "WRIST": "WRIST",
    "HAND": "HAND",
    "ELBOW": "ELBOW",
    "FEMUR": "FEMUR",
    "TIBIA": "TIBIA",
    "HUMERUS": "HUMERUS",
    "FOREARM": "FOREARM",
    "EXTREMITY": "EXTREMITY",
}


def infer_body_part(description: str) -> str:
    """Guess an upper-case DICOM body part term from a procedure description, or ""."""
    for word in _WORDS.findall(description.upper()):
        if word in _BODY_PART_WORDS:
            return _BODY_PART_WORDS[word]
    return ""


_SPECIALTY_BY_BODY_PART: dict[str, str] = {
    **dict.fromkeys(("CHEST", "THORAX", "LUNG", "HEART", "CXR"), "chest"),
    **dict.fromkeys(
        ("HEAD", "BRAIN", "SKULL", "NECK", "SPINE", "CSPINE", "TSPINE", "LSPINE", "SSPINE", "IAC"),
        "neuro",
    ),
    **dict.fromkeys(("BREAST",), "breast"),
    **dict.fromkeys(
        ("ABDOMEN", "PELVIS", "LIVER", "KIDNEY", "PANCREAS", "ABDOMENPELVIS", "GALLBLADDER", "COLON"),
        "abdominal",
    ),
    **dict.fromkeys(
        (
            "KNEE",
            "SHOULDER",
            "HIP",
            "ANKLE",
            "FOOT",
            "WRIST",
            "HAND",
            "ELBOW",
            "FEMUR",
            "TIBIA",
            "HUMERUS",
            "FOREARM",
            "EXTREMITY",
            "LEG",
            "ARM",
            "FINGER",
            "TOE",
            "CLAVICLE",
        ),
        "musculoskeletal",
    ),
}


def infer_specialty(body_part: str, modality: str, description: str = "") -> str | None:
    """Map a study to a reading specialty, or None when nothing points to one.

    Mammography is always ``breast``. Otherwise the body part decides (``CHEST``/``LUNG`` -> chest,
    ``HEAD``/``BRAIN``/``SPINE`` -> neuro, ``BREAST`` -> breast, ``ABDOMEN``/``PELVIS``/``LIVER``
    -> abdominal, joints and long bones -> musculoskeletal); when the body part is empty or
    unknown, the procedure description is searched for a body part word instead.
    """
    if modality.upper() == "MG":
        return "breast"
    for candidate in (body_part.upper().strip(), infer_body_part(description)):
        if candidate in _SPECIALTY_BY_BODY_PART:
            return _SPECIALTY_BY_BODY_PART[candidate]
    return None
