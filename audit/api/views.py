"""REST views of the audit log: signed checkpoints and RFC 9162 Merkle proofs (under /api/v1/audit/).

Who may read them is decided above this app (``audit`` imports no domain app): the views refuse
everyone until :mod:`audit.api.urls` is given the permission class that decides it.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import checkpoints
from audit.models import AuditEvent, AuditLogHead, Checkpoint


class NobodyUntilWired(BasePermission):
    """Fail closed: a proof view mounted without the portal's permission class refuses every request."""

    message = "This account may not read audit proofs."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return False


class CheckpointOutput(serializers.ModelSerializer):
    """A signed tree head, as an outside verifier needs it."""

    class Meta:
        model = Checkpoint
        fields = ["tree_size", "root_hash", "timestamp_ms", "signature", "key_fingerprint"]


class CheckpointPagination(CursorPagination):
    """Newest checkpoint first; keyset on the unique tree size."""

    ordering = "-tree_size"
    page_size_query_param = "page_size"
    max_page_size = 200


class CheckpointList(generics.ListAPIView):
    """GET the signed checkpoints."""

    permission_classes: list[type[BasePermission]] = [NobodyUntilWired]
    serializer_class = CheckpointOutput
    pagination_class = CheckpointPagination
    queryset = Checkpoint.objects.all()


def _size_param(request: Request, name: str) -> int:
    """A required non-negative integer query parameter; 400 naming it otherwise."""
    raw = request.query_params.get(name)
    if raw is None or not raw.isascii() or not raw.isdigit():
        raise ValidationError({name: "A non-negative integer is required."})
    return int(raw)


def _log_size() -> int:
    return AuditLogHead.objects.filter(pk=1).values_list("size", flat=True).first() or 0


def _hex(nodes: list[bytes]) -> list[str]:
    return [node.hex() for node in nodes]


_SIZE_DOC = "a tree size, at most the log's current size"


class InclusionProof(APIView):
    """GET the RFC 9162 inclusion proof of event ``seq`` in the tree of ``tree_size`` events."""

    permission_classes: list[type[BasePermission]] = [NobodyUntilWired]

    @extend_schema(
        parameters=[
            OpenApiParameter("seq", int, OpenApiParameter.QUERY, required=True),
            OpenApiParameter("tree_size", int, OpenApiParameter.QUERY, required=True, description=_SIZE_DOC),
        ],
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        seq, tree_size = _size_param(request, "seq"), _size_param(request, "tree_size")
        if not 0 < tree_size <= _log_size():
            raise ValidationError({"tree_size": "Out of range: must be between 1 and the log's size."})
        if seq >= tree_size:
            raise ValidationError({"seq": "Out of range: must be below tree_size."})
        leaf = AuditEvent.objects.values_list("leaf_hash", flat=True).get(seq=seq)
        proof = checkpoints.inclusion_proof(seq, tree_size)
        return Response({"seq": seq, "tree_size": tree_size, "leaf_hash": leaf, "proof": _hex(proof)})


class ConsistencyProof(APIView):
    """GET the RFC 9162 consistency proof that the tree of ``new_size`` extends that of ``old_size``."""

    permission_classes: list[type[BasePermission]] = [NobodyUntilWired]

    @extend_schema(
        parameters=[
            OpenApiParameter("old_size", int, OpenApiParameter.QUERY, required=True),
            OpenApiParameter("new_size", int, OpenApiParameter.QUERY, required=True, description=_SIZE_DOC),
        ],
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        old_size, new_size = _size_param(request, "old_size"), _size_param(request, "new_size")
        if not 0 < new_size <= _log_size():
            raise ValidationError({"new_size": "Out of range: must be between 1 and the log's size."})
        if not 0 < old_size <= new_size:
            raise ValidationError({"old_size": "Out of range: must be between 1 and new_size."})
        proof = checkpoints.consistency_proof(old_size, new_size)
        return Response({"old_size": old_size, "new_size": new_size, "proof": _hex(proof)})
