"""The bytes of an audit event's leaf, fast: canonical JSON of :func:`audit.models.leaf_document`
without building the document.

The leaf document has a fixed shape (see :func:`audit.models.leaf_document`): its keys, and so their
canonical order, are known in advance, and its values are strings, integers or None except
``details``. :func:`leaf_bytes` writes that shape directly: strings through ``encode_basestring``
(the escaping :mod:`audit.canonical` uses), integers within the safe range through ``str``, and
everything else, ``details`` always, through the general encoder at the depth it has in the
document. A lone surrogate makes the final UTF-8 encode fail; the general path then raises the
error :func:`audit.canonical.canonical_json` raises. The result is byte for byte
``canonical_json(leaf_document(...))`` (a property test in tests/audit_crypto holds it to that); it
costs about a third of the CPU, which matters for ``verify_audit --full`` over millions of events.
"""

from __future__ import annotations

import hashlib
from json.encoder import encode_basestring

from audit.canonical import MAX_SAFE_INTEGER, canonical_fragment, canonical_json
from audit.models import leaf_document

__all__ = ["leaf_bytes", "leaf_digest"]

_sha256 = hashlib.sha256


def _string(value: object, depth: int) -> str:
    # Exactly str (a subclass could override __str__ or be a mark-safe string: leave it to the rules).
    return encode_basestring(value) if type(value) is str else canonical_fragment(value, depth)


def _integer(value: object, depth: int) -> str:
    if value is None:
        return "null"
    if type(value) is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return str(value)
    return canonical_fragment(value, depth)


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
    try:
        # Keys in canonical (UTF-16, here plain ASCII) order; depth 1 for members, 2 in actor/object.
        return (
            '{"action":'
            + _string(action, 1)
            + ',"actor":{"id":'
            + _integer(actor_id, 2)
            + ',"kind":'
            + _string(actor_kind, 2)
            + ',"username":'
            + _string(actor_username, 2)
            + '},"channel":'
            + _string(channel, 1)
            + ',"client_address":'
            + _string(client_address, 1)
            + ',"details":'
            + canonical_fragment(details, 1)
            + ',"object":{"id":'
            + _string(object_id, 2)
            + ',"type":'
            + _string(object_type, 2)
            + '},"patient_id":'
            + _integer(patient_id, 1)
            + ',"recorded_at":'
            + _string(recorded_at.isoformat().replace("+00:00", "Z"), 1)  # type: ignore[attr-defined]
            + ',"seq":'
            + _integer(seq, 1)
            + ',"study_id":'
            + _integer(study_id, 1)
            + ',"user_agent":'
            + _string(user_agent, 1)
            + "}"
        ).encode("utf-8")
    except (ValueError, TypeError):
        # Not encodable (a lone surrogate fails only at the final encode here): let the general path
        # raise, so the error and its message are those of the first bad value in canonical order.
        pass
    return canonical_json(
        leaf_document(
            seq, recorded_at, actor_kind, actor_id, actor_username, action, object_type, object_id,
            patient_id, study_id, details, client_address, user_agent, channel,
        )
    )  # fmt: skip


def leaf_digest(*columns: object) -> bytes:
    """The leaf hash (SHA-256 of 0x00 || :func:`leaf_bytes`) of an event's :data:`LEAF_FIELDS` values."""
    return _sha256(b"\x00" + leaf_bytes(*columns)).digest()
