"""``POST /api/v1/compare``: run the discrepancy engine on two texts the caller supplies."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference.compare import compare
from portal.accounts.permissions import CanCompare
from portal.records.api.serializers import CleanTextField


class CompareInput(serializers.Serializer):
    """Two texts: the AI's (candidate) and the signed one (reference)."""

    candidate = CleanTextField(allow_blank=True)
    reference = CleanTextField(allow_blank=True)


class CompareView(APIView):
    """Compare two texts; nothing is stored (the texts are the caller's, not the record's)."""

    permission_classes = [CanCompare]

    @extend_schema(request=CompareInput, responses={200: dict})
    def post(self, request: Request) -> Response:
        data = CompareInput(data=request.data)
        data.is_valid(raise_exception=True)
        limit = settings.CONCORDANCE_MAX_TEXT_CHARS
        result = compare(data.validated_data["candidate"][:limit], data.validated_data["reference"][:limit])
        return Response(result.to_dict())
