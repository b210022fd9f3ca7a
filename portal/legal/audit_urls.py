"""URLs of the audit log's checkpoints and proofs (mounted at /api/v1/audit/)."""

from django.urls import path

from portal.legal import api

urlpatterns = [
    path("checkpoints", api.CheckpointList.as_view(), name="api-audit-checkpoints"),
    path("proofs/inclusion", api.InclusionProof.as_view(), name="api-audit-inclusion-proof"),
    path("proofs/consistency", api.ConsistencyProof.as_view(), name="api-audit-consistency-proof"),
]
