"""REST views for the clinical record: thin, one per action; workflows live in records.services."""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import log as audit
from portal.accounts import roles
from portal.accounts.permissions import CanIngest, CanReadRecords
from portal.core.dates import parse_date_param
from portal.core.pagination import IdCursorPagination
from portal.records import services
from portal.records.api import serializers as s
from portal.records.models import AIOutput, SignedReport, Study


def ingested_response(result: services.Ingested, serializer_class: type) -> Response:
    """201 with the new record, or 200 with the stored one when the payload was already ingested."""
    return Response(
        serializer_class(result.record).data,
        status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
    )


class AuditedReadMixin:
    """Write one HIPAA access-log event per read of patient data (list or detail)."""

    audit_object_type = ""

    def audit_read(self, request: Request, objects: list[Any], *, detail: bool) -> None:
        with transaction.atomic():
            if detail:
                obj = objects[0]
                study = obj if isinstance(obj, Study) else obj.study
                audit.record(
                    f"{self.audit_object_type}.view",
                    actor=request.user,
                    context=audit.AuditContext.from_request(request),
                    object_type=self.audit_object_type,
                    object_id=obj.pk,
                    patient_id=study.patient_id,
                    study_id=study.pk,
                )
            else:
                audit.record(
                    f"{self.audit_object_type}.list",
                    actor=request.user,
                    context=audit.AuditContext.from_request(request),
                    object_type=self.audit_object_type,
                    details={"ids": [o.pk for o in objects]},
                )


class _RecordListCreate(AuditedReadMixin, generics.GenericAPIView):
    """GET lists (filtered, keyset-paginated); POST ingests. Subclasses name the pieces."""

    pagination_class = IdCursorPagination
    input_serializer: type
    output_serializer: type

    def get_permissions(self) -> list:
        return [CanIngest()] if self.request.method == "POST" else [CanReadRecords()]

    def get_serializer_class(self) -> type:
        return self.input_serializer if self.request.method == "POST" else self.output_serializer

    def visible_studies(self) -> QuerySet[Study]:
        return roles.visible_studies(self.request.user, Study.objects.all())

    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        self.audit_read(request, page, detail=False)
        return self.get_paginated_response(self.output_serializer(page, many=True).data)

    def post(self, request: Request) -> Response:
        serializer = self.input_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = self.ingest(serializer)
        return ingested_response(result, self.output_serializer)


def _param(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, str, OpenApiParameter.QUERY, required=False, description=description)


class StudyListCreate(_RecordListCreate):
    """Studies: create (idempotent by accession number) and list with filters."""

    input_serializer = s.StudyInput
    output_serializer = s.StudyOutput
    audit_object_type = "study"

    def get_queryset(self) -> QuerySet[Study]:
        qs = self.visible_studies().select_related("patient")
        params = self.request.query_params
        for param, lookup in (
            ("accession_number", "accession_number"),
            ("modality", "modality"),
            ("specialty", "specialty"),
            ("study_instance_uid", "study_instance_uid"),
        ):
            if params.get(param):
                qs = qs.filter(**{lookup: params[param]})
        if params.get("date_from"):
            qs = qs.filter(study_datetime__date__gte=parse_date_param(params["date_from"], "date_from"))
        if params.get("date_to"):
            qs = qs.filter(study_datetime__date__lte=parse_date_param(params["date_to"], "date_to"))
        return qs

    @extend_schema(
        parameters=[
            _param("accession_number", "exact"),
            _param("modality", "CR, CT, MR, US, MG"),
            _param("specialty", "chest, neuro, ..."),
            _param("date_from", "YYYY-MM-DD"),
            _param("date_to", "YYYY-MM-DD"),
        ],
        responses=s.StudyOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        return super().get(request)

    @extend_schema(request=s.StudyInput, responses={200: s.StudyOutput, 201: s.StudyOutput})
    def post(self, request: Request) -> Response:
        return super().post(request)

    def ingest(self, serializer: s.StudyInput) -> services.Ingested:
        return services.study_ingest(
            payload=serializer.to_payload(),
            actor=self.request.user,
            context=audit.AuditContext.from_request(self.request),
        )


class AIOutputListCreate(_RecordListCreate):
    """AI outputs: store (idempotent by natural key) and list with filters."""

    input_serializer = s.AIOutputInput
    output_serializer = s.AIOutputOutput
    audit_object_type = "ai_output"

    def get_queryset(self) -> QuerySet[AIOutput]:
        qs = AIOutput.objects.filter(study__in=self.visible_studies()).select_related(
            "study", "model_version"
        )
        params = self.request.query_params
        for param, lookup in (
            ("accession_number", "study__accession_number"),
            ("kind", "kind"),
            ("model_name", "model_version__name"),
            ("model_version", "model_version__version"),
            ("origin", "origin"),
        ):
            if params.get(param):
                qs = qs.filter(**{lookup: params[param]})
        return qs

    @extend_schema(
        parameters=[
            _param("accession_number", "exact"),
            _param("kind", "report_draft, ..."),
            _param("model_name", "exact"),
            _param("model_version", "exact"),
        ],
        responses=s.AIOutputOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        return super().get(request)

    @extend_schema(request=s.AIOutputInput, responses={200: s.AIOutputOutput, 201: s.AIOutputOutput})
    def post(self, request: Request) -> Response:
        return super().post(request)

    def ingest(self, serializer: s.AIOutputInput) -> services.Ingested:
        return services.ai_output_ingest(
            payload=serializer.to_payload(),
            actor=self.request.user,
            context=audit.AuditContext.from_request(self.request),
        )


class SignedReportListCreate(_RecordListCreate):
    """Signed reports and their amendments: store (idempotent) and list with filters."""

    input_serializer = s.SignedReportInput
    output_serializer = s.SignedReportOutput
    audit_object_type = "signed_report"

    def get_queryset(self) -> QuerySet[SignedReport]:
        qs = SignedReport.objects.filter(study__in=self.visible_studies()).select_related(
            "study", "radiologist"
        )
        params = self.request.query_params
        for param, lookup in (
            ("accession_number", "study__accession_number"),
            ("status", "status"),
            ("radiologist", "radiologist__username"),
        ):
            if params.get(param):
                qs = qs.filter(**{lookup: params[param]})
        return qs

    @extend_schema(
        parameters=[
            _param("accession_number", "exact"),
            _param("status", "final, addendum, correction"),
            _param("radiologist", "username"),
        ],
        responses=s.SignedReportOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        return super().get(request)

    @extend_schema(
        request=s.SignedReportInput, responses={200: s.SignedReportOutput, 201: s.SignedReportOutput}
    )
    def post(self, request: Request) -> Response:
        return super().post(request)

    def ingest(self, serializer: s.SignedReportInput) -> services.Ingested:
        return services.signed_report_ingest(
            payload=serializer.to_payload(),
            actor=self.request.user,
            context=audit.AuditContext.from_request(self.request),
        )


class _RecordDetail(AuditedReadMixin, generics.RetrieveAPIView):
    """GET one record; 404 both when it does not exist and when the caller may not see it."""

    permission_classes = [CanReadRecords]

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        obj = self.get_object()
        self.audit_read(request, [obj], detail=True)
        return Response(self.get_serializer(obj).data)


class StudyDetail(_RecordDetail):
    """One study."""

    serializer_class = s.StudyOutput
    audit_object_type = "study"

    def get_queryset(self) -> QuerySet[Study]:
        return roles.visible_studies(self.request.user, Study.objects.select_related("patient"))


class AIOutputDetail(_RecordDetail):
    """One AI output with provenance."""

    serializer_class = s.AIOutputOutput
    audit_object_type = "ai_output"

    def get_queryset(self) -> QuerySet[AIOutput]:
        visible = roles.visible_studies(self.request.user, Study.objects.all())
        return AIOutput.objects.filter(study__in=visible).select_related("study", "model_version")


class SignedReportDetail(_RecordDetail):
    """One signed report."""

    serializer_class = s.SignedReportOutput
    audit_object_type = "signed_report"

    def get_queryset(self) -> QuerySet[SignedReport]:
        visible = roles.visible_studies(self.request.user, Study.objects.all())
        return SignedReport.objects.filter(study__in=visible).select_related("study", "radiologist")


class HealthView(APIView):
    """Liveness and database reachability for load balancers (no auth, no data)."""

    permission_classes: list = []
    authentication_classes: list = []

    @extend_schema(responses={200: dict, 503: dict})
    def get(self, request: Request) -> Response:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception:  # any database failure means "not ready"
            return Response({"status": "unavailable"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response({"status": "ok"})
