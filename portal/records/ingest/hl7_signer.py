"""Who signed an HL7 v2 result: the principal result interpreter as a clinician key and name.

Where RIS feeds put the signer, in the order tried:

* ``OBR-32`` principal result interpreter (NDL). Its first component is a CNN whose parts are
  *subcomponents* (``16621&ORANGE&PANDA&&&&&&RIS``: id, family, given, middle, suffix, prefix,
  degree, source table, assigning authority namespace, universal id). Many feeds send it as if it
  were an XCN instead, with *components* (``16621^ORANGE^PANDA``); both are read.
* ``OBX-16`` responsible observer of the first text OBX (XCN).
* ``ORC-12`` (XCN) as the last resort: the standard names it the ordering provider, but some
  radiology feeds put the reading radiologist there and leave OBR-32 and OBX-16 empty.

XCN: 1 id, 2 family, 3 given, 4 middle, 5 suffix, 6 prefix, 7 degree, 8 source table, 9 assigning
authority (HD; its namespace, else universal id). Without an assigning authority, the identifier is
taken to be a provider number of the sending facility (MSH-4, else MSH-3): that is the authority.
"""

from __future__ import annotations

from portal.records.ingest.hl7_text import Segment, short
from portal.records.ingest.payloads import (
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MISSING_FIELD,
    AdapterError,
    ClinicianPayload,
)

__all__ = ["hl7_signer"]

# XCN component positions of the name parts, and of the assigning authority.
_NAME_PARTS = {"family_name": 2, "given_name": 3, "middle_name": 4, "suffix": 5, "prefix": 6}
_AUTHORITY = 9


def hl7_signer(
    segments: dict[str, list[Segment]], obr: Segment, text_obx: list[Segment], *, default_authority: str
) -> ClinicianPayload:
    """The signer of an ORU^R01 (OBR-32, else OBX-16, else ORC-12), or ``missing_field`` at OBR-32."""
    candidates: list[tuple[Segment, int]] = [(obr, 32)]
    if text_obx:
        candidates.append((text_obx[0], 16))
    candidates.extend((orc, 12) for orc in segments.get("ORC", [])[:1])
    for segment, field in candidates:
        signer = _person(segment, field, default_authority)
        if signer is not None:
            return signer
    raise AdapterError(MISSING_FIELD, "principal result interpreter is required", "OBR-32")


def _person(segment: Segment, field: int, default_authority: str) -> ClinicianPayload | None:
    location = segment.loc(field)
    first = segment.component(field, 1, 1)
    if not first:
        return None
    # CNN in subcomponents when the first component carries more than the id; XCN otherwise.
    as_cnn = bool(segment.component(field, 1, 2) or segment.component(field, 1, _AUTHORITY))

    def part(position: int) -> str:
        if as_cnn:
            return segment.component(field, 1, position)
        return segment.component(field, position, 1)

    authority = part(_AUTHORITY) or (
        segment.component(field, 1, _AUTHORITY + 1) if as_cnn else segment.component(field, _AUTHORITY, 2)
    )
    names = {name: short(part(pos), location, max_len=MAX_NAME_CHARS) for name, pos in _NAME_PARTS.items()}
    return ClinicianPayload(
        authority=short(authority, location, max_len=MAX_ID_CHARS) or default_authority[:MAX_ID_CHARS],
        identifier=short(first, location, max_len=MAX_ID_CHARS),
        **names,
    )
