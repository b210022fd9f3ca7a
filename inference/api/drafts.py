"""Live drafting API: ``POST /api/v1/drafts`` runs the local model for a study and stores the draft.

Synchronous: the reporting system (or a radiologist's client) waits for the text, which is stored as an
AI output with its provenance before it is returned. Errors map centrally
(:mod:`portal.core.api_errors`): bad inputs 400, unknown study or model 404, no serving model 409,
oversized 413, a model failing its integrity check 503.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import log as audit
from inference.runtime import drafting
from inference.selectors import model_version_by_reference
from portal.accounts.permissions import CanDraft
from portal.core.errors import RecordError, RecordNotFound
from portal.core.serializers import StrictInput
from portal.records.api.serializers import AIOutputOutput, BoundedJSONField
from portal.records.models import AIOutputKind

# A draft request is a handful of findings; anything near the general JSON cap is not one.
DRAFT_MAX_BYTES = 64 * 1024


class DraftTooBig(RecordError):
    """The request body is larger than any real draft request."""

    status = 413
    code = "too_large"


@extend_schema_field({"oneOf": [{"type": "string", "maxLength": 200}, {"type": "integer", "minimum": 1}]})
class ReferenceField(serializers.Field):
    """A record named by its id (a positive integer) or by a short text key (returned as text)."""

    def __init__(self, *, hint: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hint = hint

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, int) and not isinstance(data, bool) and 0 < data < 2**63:
            return str(data)
        if isinstance(data, str) and 0 < len(data) <= 200 and data.isprintable() and data.strip() == data:
            return data
        raise ValidationError(self.hint)

    def to_representation(self, value: Any) -> Any:
        return value


class DraftInput(StrictInput):
    """What to draft: the study (accession number or id), the kind, the inputs and optionally the model."""

    study = ReferenceField(hint="Give the study's accession number or id.")
    kind = serializers.ChoiceField(choices=AIOutputKind.choices, default=AIOutputKind.REPORT_DRAFT)
    inputs = BoundedJSONField()
    model_version = ReferenceField(hint="Give the model version's id or name:version.", required=False)


class DraftCreate(APIView):
    """Generate a draft now with the active (or named) local model and store it; 201 with the AI output."""

    permission_classes = [CanDraft]

    @extend_schema(request=DraftInput, responses={201: AIOutputOutput})
    def post(self, request: Request) -> Response:
        length = request.META.get("CONTENT_LENGTH") or "0"
        limit = getattr(settings, "INFERENCE_DRAFT_MAX_BYTES", DRAFT_MAX_BYTES)
        if not length.isdigit() or int(length) > limit:
            raise DraftTooBig(f"A draft request must be under {limit} bytes.")
        serializer = DraftInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        study = drafting.find_study(data["study"])
        model_version = (
            model_version_by_reference(data["model_version"], field="model_version", error=RecordNotFound)
            if "model_version" in data
            else None
        )
        output = drafting.draft_create(
            study=study,
            kind=data["kind"],
            inputs=data["inputs"],
            model_version=model_version,
            actor=request.user,
            context=audit.AuditContext.from_request(request),
        )
        return Response(AIOutputOutput(output).data, status=status.HTTP_201_CREATED)
