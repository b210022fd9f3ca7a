"""What every FHIR R4 adapter needs: bounded JSON loading, validation errors as locations, text."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any

from portal.records.ingest.payloads import (
    MALFORMED,
    MAX_DESCRIPTION_CHARS,
    MISSING_FIELD,
    TOO_LARGE,
    AdapterError,
    clean_text,
)

__all__ = ["MAX_BODY_BYTES", "aware", "load_json", "short", "validate"]

MAX_BODY_BYTES = 1_048_576


def load_json(body: bytes | str | dict, max_bytes: int) -> Any:
    """JSON text, bytes or an already decoded object -> Python values; NaN, Infinity and oversize refused."""
    if isinstance(body, dict):
        return body
    if isinstance(body, bytes | bytearray | memoryview):
        raw = bytes(body)
        if len(raw) > max_bytes:
            raise AdapterError(TOO_LARGE, f"body larger than {max_bytes} bytes", "")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise AdapterError(MALFORMED, "body is not UTF-8", "") from None
    elif isinstance(body, str):
        if len(body) > max_bytes:
            raise AdapterError(TOO_LARGE, f"body larger than {max_bytes} bytes", "")
        text = body
    else:
        raise AdapterError(MALFORMED, "body must be JSON text, bytes or an object", "")

    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        # FHIR JSON forbids NaN and Infinity; Python's json would accept them silently.
        return json.loads(text, parse_constant=reject_constant)
    except (ValueError, RecursionError):
        raise AdapterError(MALFORMED, "body is not valid JSON", "") from None


def validate(model: Any, data: dict, root: str) -> Any:
    """Validate ``data`` with a ``fhir.resources`` model; the first problem as an :class:`AdapterError`."""
    try:
        return model.model_validate(data)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        errors = exc.errors() if hasattr(exc, "errors") else []
        first = errors[0] if errors else {}
        location = _pydantic_location(first.get("loc", ()), root)
        if first.get("type") == "missing":
            raise AdapterError(MISSING_FIELD, "required element is missing", location) from None
        # pydantic's message describes the rule, not the offending input, so it carries no PHI.
        reason = str(first.get("msg", "invalid element"))[:200]
        raise AdapterError(MALFORMED, f"invalid element: {reason}", location) from None
    except (TypeError, RecursionError, AttributeError):
        raise AdapterError(MALFORMED, f"not a valid {root}", root) from None


def _pydantic_location(loc: tuple | list, root: str) -> str:
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in ("function-after", "function-before", "function-wrap"):
            path += f".{part}"
    return path


def short(value: Any, location: str, max_len: int = MAX_DESCRIPTION_CHARS) -> str:
    """A short FHIR string as clean text ("" for None), too long -> ``too_large``."""
    if value is None:
        return ""
    return clean_text(str(value), max_len=max_len, location=location).strip()


def aware(value: Any) -> datetime | None:
    """FHIR dateTime/instant -> aware UTC datetime; a bare date -> midnight UTC; partial -> None."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=UTC)  # FHIR requires an offset with a time; be lenient
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0, 0), tzinfo=UTC)
    return None
