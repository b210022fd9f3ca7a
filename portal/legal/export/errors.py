"""Errors of the export workflow, mapped to HTTP by the API's central error handler."""

from __future__ import annotations

from portal.core.errors import RecordError


class ExportForbidden(RecordError):
    """The account may not export this scope."""

    status = 403
    code = "forbidden"


class ExportError(RecordError):
    """The package could not be built; the message is safe to show (no PHI)."""

    status = 500
    code = "export_failed"


class ExportCancelled(Exception):
    """The job was cancelled (or reaped) while it was building: stop and discard the partial file."""
