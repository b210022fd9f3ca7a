"""The auditor's proof viewer (/audit/proofs/) and its "download proof" (a ``concordance-proof-v1``
JSON document that ``verify_package.py`` checks offline).

Pick an event by its sequence number or a study by its accession number; optionally the checkpoint
to prove against (default: the newest) and an earlier one to prove the log consistent from. Finding a
study by accession belongs to the record, above this app: :mod:`audit.urls` is given that look-up.
Each view and download of a proof is itself audited (the events name patients' records).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from audit import log as audit_log
from audit import proof_viewer
from audit.proof_viewer import ProofError, ProofSet

View = Callable[..., HttpResponse]
#: Accession number -> the study's primary key (None when unknown); given by the project's URLs.
StudyFinder = Callable[[str], int | None]
MAX_ACCESSION = 64
MAX_SEQ = 2**63 - 1


class BadInput(ProofError):
    """A malformed query parameter: 400 with a message naming it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=400)


def proof_viewer_view(guard: Callable[[View], View], find_study: StudyFinder) -> View:
    """The viewer page: sign-in, GET only, then ``guard``."""

    def page(request: HttpRequest) -> HttpResponse:
        return _viewer(request, find_study)

    return login_required(require_GET(guard(page)))


def proof_download_view(guard: Callable[[View], View], find_study: StudyFinder) -> View:
    """The proof document as a JSON attachment: sign-in, GET only, then ``guard``."""

    def download(request: HttpRequest) -> HttpResponse:
        return _download(request, find_study)

    return login_required(require_GET(guard(download)))


def _int_param(request: HttpRequest, name: str) -> int | None:
    raw = request.GET.get(name, "").strip()
    if not raw:
        return None
    if len(raw) > 19 or not raw.isascii() or not raw.isdigit() or int(raw) > MAX_SEQ:
        raise BadInput(f"{name}: a whole number of at most 19 digits is required")
    return int(raw)


def _query(request: HttpRequest) -> dict[str, Any]:
    """The viewer's parameters, validated (BadInput otherwise)."""
    accession = request.GET.get("accession", "").strip()
    if len(accession) > MAX_ACCESSION or any(ord(ch) < 0x20 for ch in accession):
        raise BadInput(f"accession: at most {MAX_ACCESSION} printable characters")
    query = {
        "seq": _int_param(request, "seq"),
        "accession": accession,
        "checkpoint": _int_param(request, "checkpoint"),
        "since": _int_param(request, "since"),
    }
    if query["seq"] is not None and accession:
        raise BadInput("choose an event or a study, not both")
    return query


def _prove(query: dict[str, Any], find_study: StudyFinder) -> tuple[ProofSet, int | None]:
    """The proofs the query asks for, and the study's key when it named one."""
    if query["seq"] is not None:
        return proof_viewer.prove_event(
            query["seq"], tree_size=query["checkpoint"], since=query["since"]
        ), None
    study_id = find_study(query["accession"])
    if study_id is None:
        raise ProofError("no study with this accession number")
    proofs = proof_viewer.prove_study(
        study_id, query["accession"], tree_size=query["checkpoint"], since=query["since"]
    )
    return proofs, study_id


def _record(request: HttpRequest, action: str, proofs: ProofSet, study_id: int | None) -> None:
    details = {"subject": proofs.subject["kind"], "checkpoint": proofs.checkpoint.tree_size}
    if proofs.subject["kind"] == "event":
        details["seq"] = proofs.subject["seq"]
    with transaction.atomic():
        audit_log.record(
            action,
            actor=request.user,
            context=audit_log.AuditContext.from_request(request),
            object_type="audit_proof",
            study_id=study_id,
            details=details,
        )


def _viewer(request: HttpRequest, find_study: StudyFinder) -> HttpResponse:
    context: dict[str, Any] = {
        "query": {},
        "max_events": proof_viewer.MAX_EVENTS,
        "checkpoints": [],
        "proofs": None,
        "consistency": None,
        "error": "",
    }
    status = 200
    try:
        context["checkpoints"] = proof_viewer.recent_checkpoints()
        query = context["query"] = _query(request)
        if query["seq"] is not None or query["accession"]:
            proofs, study_id = _prove(query, find_study)
            context["proofs"], context["consistency"] = proofs, proofs.consistency
            _record(request, "audit.proof_viewed", proofs, study_id)
        elif query["since"] is not None:  # only the consistency between two checkpoints
            later = proof_viewer.checkpoint_of(query["checkpoint"])
            context["consistency"] = proof_viewer.consistency_between(query["since"], later)
    except ProofError as exc:
        context["error"], status = exc.message, exc.status
    return render(request, "audit/proofs.html", context, status=status)


def _download(request: HttpRequest, find_study: StudyFinder) -> HttpResponse:
    try:
        query = _query(request)
        if query["seq"] is None and not query["accession"]:
            raise BadInput("choose an event (seq) or a study (accession)")
        proofs, study_id = _prove(query, find_study)
        if not proofs.events:
            raise ProofError("nothing to prove yet: the events are newer than the signed checkpoint", 409)
    except ProofError as exc:
        return HttpResponse(exc.message, status=exc.status, content_type="text/plain; charset=utf-8")
    _record(request, "audit.proof_downloaded", proofs, study_id)
    body = json.dumps(proofs.document(), indent=2, ensure_ascii=False)
    name = f"event-{query['seq']}" if query["seq"] is not None else "study"
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="concordance-proof-{name}-{proofs.checkpoint.tree_size}.json"'
    )
    return response
