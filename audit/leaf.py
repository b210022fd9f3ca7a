"""The bytes of an audit event's leaf, fast: canonical JSON of :func:`audit.models.leaf_document`
without building the document.

The leaf document has a fixed shape (see :func:`audit.models.leaf_document`): its keys, and so their
canonical order, are known in advance, and its columns are strings, integers or None, except
``details``. When they are (``str``; exactly ``int`` within the safe range, or None; a ``datetime``),
:func:`leaf_bytes` writes that shape directly: strings through ``encode_basestring`` (the escaping
:mod:`audit.canonical` uses), integers through ``str``, ``details`` likewise when it is a flat object
with ASCII keys, else through the general encoder at the depth it has in the document. Any other
value, and any
value that cannot be encoded (a lone surrogate fails only at the final UTF-8 encode here), goes to
the general path, ``canonical_json(leaf_document(...))``, which then gives the bytes or raises its
error. The result is byte for byte that expression's (a hypothesis property test in
tests/audit_crypto holds it to that) at about a third of the CPU, which is what lets
``verify_audit --full`` read millions of events in seconds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from json.encoder import encode_basestring

from audit.canonical import MAX_SAFE_INTEGER, canonical_fragment, canonical_json
from audit.models import leaf_document

__all__ = ["leaf_bytes", "leaf_digest", "leaf_parts"]

_sha256 = hashlib.sha256
_SAFE = range(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER + 1)


def _plain(strings: tuple[object, ...], integers: tuple[object, ...]) -> bool:
    # Any str, as the general encoder takes it (a TextChoices member such as ActorKind.USER is one:
    # encode_basestring reads the characters, not __str__); exactly int (not bool, not an IntEnum,
    # whose str() differs) or None.
    for value in strings:
        if not isinstance(value, str):
            return False
    for value in integers:
        if value is not None and (type(value) is not int or value not in _SAFE):
            return False
    return True


def _details(details: object) -> str:
    """``details`` as canonical JSON text at depth 1: a flat object with ASCII keys written here
    (ASCII keys sort the same by UTF-16 code units as by code points), anything else by the general
    encoder."""
    if type(details) is not dict:
        return canonical_fragment(details, 1)
    members = []
    for key, value in details.items():
        if type(key) is not str or not key.isascii():
            return canonical_fragment(details, 1)
        kind = type(value)
        if kind is str:
            text = encode_basestring(value)
        elif kind is int and value in _SAFE:
            text = str(value)
        else:
            text = canonical_fragment(value, 2)
        members.append((key, text))
    members.sort()
    return "{" + ",".join([encode_basestring(key) + ":" + text for key, text in members]) + "}"


def _null(value: object) -> str:
    return "null" if value is None else str(value)


def leaf_bytes(  # noqa: PLR0913 - the columns of audit.models.LEAF_FIELDS, in that order
    seq: object,
    recorded_at: object,
    actor_kind: object,
    actor_id: object,
    actor_username: object,
    action: object,
    object_type: object,
    object_id: object,
    patient_id: object,
    study_id: object,
    details: object,
    client_address: object,
    user_agent: object,
    channel: object,
) -> bytes:
    """``canonical_json(leaf_document(...))`` of these column values, built directly.

    Raises what that expression raises for values it cannot encode.
    """
    strings = (
        actor_kind,
        actor_username,
        action,
        object_type,
        object_id,
        client_address,
        user_agent,
        channel,
    )
    if type(recorded_at) is dt.datetime and _plain(strings, (seq, actor_id, patient_id, study_id)):
        s = encode_basestring
        try:
            # Keys in canonical (UTF-16, here plain ASCII) order; str(int) is the canonical integer.
            return (
                f'{{"action":{s(action)},"actor":{{"id":{_null(actor_id)},"kind":{s(actor_kind)},'
                f'"username":{s(actor_username)}}},"channel":{s(channel)},'
                f'"client_address":{s(client_address)},"details":{_details(details)},'
                f'"object":{{"id":{s(object_id)},"type":{s(object_type)}}},'
                f'"patient_id":{_null(patient_id)},'
                f'"recorded_at":{s(recorded_at.isoformat().replace("+00:00", "Z"))},'
                f'"seq":{_null(seq)},"study_id":{_null(study_id)},"user_agent":{s(user_agent)}}}'
            ).encode()
        except (ValueError, TypeError):
            pass  # the general path below raises the error of the first bad value, as it words it
    return canonical_json(
        leaf_document(
            seq, recorded_at, actor_kind, actor_id, actor_username, action, object_type, object_id,
            patient_id, study_id, details, client_address, user_agent, channel,
        )
    )  # fmt: skip


def leaf_digest(*columns: object) -> bytes:
    """The leaf hash (SHA-256 of 0x00 || :func:`leaf_bytes`) of an event's ``LEAF_FIELDS`` values."""
    return _sha256(b"\x00" + leaf_bytes(*columns)).digest()


# A stand-in for the number while the leaf is written without it (the largest integer the leaf takes).
_SEQ_STANDIN = MAX_SAFE_INTEGER
_SEQ_MEMBER = b'"seq":' + str(_SEQ_STANDIN).encode() + b","


def leaf_parts(*columns: object) -> tuple[bytes, bytes] | None:
    """The hashed bytes of a leaf before and after its ``seq``, for an event not numbered yet:
    ``b"\\x00" + leaf_bytes(seq, ...) == before + str(seq).encode() + after`` for every
    non-negative ``seq`` (the leaf hash is SHA-256 of that), so the database can hash the leaf in
    the statement that takes the number. ``columns`` are the ``LEAF_FIELDS`` values without
    ``seq``; raises what :func:`leaf_bytes` raises.

    The leaf is written with a stand-in number, and split around its ``"seq":`` member. None when
    that member's text occurs more than once (a ``details`` object with the same key and value):
    the caller then numbers the event first and hashes it whole.
    """
    document = leaf_bytes(_SEQ_STANDIN, *columns)
    if document.count(_SEQ_MEMBER) != 1:
        return None
    start = document.index(_SEQ_MEMBER) + len(b'"seq":')
    return b"\x00" + document[:start], document[start + len(str(_SEQ_STANDIN)) :]
