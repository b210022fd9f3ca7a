"""URLs of the auditor's pages (mounted at /audit/).

``audit`` imports no domain app, so the guard that decides who may open the pages (and audits a
refusal) and the look-up of a study by accession number are arguments: the project's URL
configuration passes them (see :mod:`portal.urls`). The public key pages need only a sign-in.
"""

from __future__ import annotations

from collections.abc import Callable

from django.urls import URLPattern, path

from audit import proof_views, views
from audit.proof_views import StudyFinder
from audit.views import View


def _no_study(_accession: str) -> int | None:
    return None


def urlpatterns_for(guard: Callable[[View], View], find_study: StudyFinder = _no_study) -> list[URLPattern]:
    """The status page, the verification progress, the proof viewer and its download, each wrapped in
    ``guard`` (a view decorator that refuses the wrong accounts); the public key for any account."""
    return [
        path("", views.audit_status_view(guard), name="audit-status"),
        path("verifications/<int:job_id>", views.verification_job_view(guard), name="audit-verification-job"),
        path("proofs/", proof_views.proof_viewer_view(guard, find_study), name="audit-proofs"),
        path(
            "proofs/download", proof_views.proof_download_view(guard, find_study), name="audit-proof-download"
        ),
        path("key/", views.public_key_page, name="audit-public-key"),
        path("key.pem", views.public_key_download, name="audit-public-key-pem"),
    ]
