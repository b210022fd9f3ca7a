"""URLs of the audit log's checkpoints and proofs (mounted at /api/v1/audit/).

``audit`` imports no domain app, so the permission class that decides who may read proofs is an
argument: the project's URL configuration passes it (see :mod:`portal.urls`).
"""

from __future__ import annotations

from django.urls import URLPattern, path
from rest_framework.permissions import BasePermission

from audit.api import views


def urlpatterns_for(permission: type[BasePermission]) -> list[URLPattern]:
    """The checkpoint and proof endpoints, each guarded by ``permission``."""
    guarded = {"permission_classes": [permission]}
    return [
        path("checkpoints", views.CheckpointList.as_view(**guarded), name="api-audit-checkpoints"),
        path("proofs/inclusion", views.InclusionProof.as_view(**guarded), name="api-audit-inclusion-proof"),
        path(
            "proofs/consistency",
            views.ConsistencyProof.as_view(**guarded),
            name="api-audit-consistency-proof",
        ),
    ]
