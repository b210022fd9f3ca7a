"""Domain errors of the services of every app, raised once and mapped to HTTP/FHIR/HL7 answers centrally."""

from __future__ import annotations


class RecordError(Exception):
    """Base class: ``code`` is a short machine-readable reason, ``status`` the HTTP status it maps to."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidRecord(RecordError):
    """The payload is well-formed but not acceptable (unknown radiologist, impossible dates...)."""

    status = 400
    code = "invalid"


class RecordNotFound(RecordError):
    """A referenced record (study, report) does not exist."""

    status = 404
    code = "not_found"


class RecordConflict(RecordError):
    """The payload conflicts with an immutable record already stored under the same key."""

    status = 409
    code = "conflict"
