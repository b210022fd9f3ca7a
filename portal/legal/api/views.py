"""REST views for legal holds and legal export packages (mounted at /api/v1/legal/)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import log as audit
from portal.accounts.permissions import CanExportPackages, CanManageHolds, CanReadHolds
from portal.core.pagination import IdCursorPagination
from portal.legal import export_jobs, services
from portal.legal.export.scope import MAX_ACCESSIONS
from portal.legal.models import ExportPackage, LegalHold

# --- Legal holds -----------------------------------------------------------------------------------


class HoldInput(serializers.Serializer):
    """A new hold: the matter, why, and exactly one scope. Texts are kept verbatim (no trimming)."""

    matter_reference = serializers.CharField(max_length=128, trim_whitespace=False)
    reason = serializers.CharField(trim_whitespace=False)
    patient_mrn = serializers.CharField(max_length=64, required=False)
    accession_numbers = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, allow_empty=False, max_length=10_000
    )
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)


class ReleaseInput(serializers.Serializer):
    """Why counsel lifts the hold."""

    reason = serializers.CharField(trim_whitespace=False)


class HoldOutput(serializers.ModelSerializer):
    """A hold as counsel and auditors see it (record ids and accession numbers; no demographics)."""

    placed_by = serializers.CharField(source="placed_by.username")
    released_by = serializers.CharField(source="released_by.username", default=None)
    accession_numbers = serializers.SerializerMethodField()
    is_active = serializers.BooleanField()

    class Meta:
        model = LegalHold
        fields = [
            "id",
            "matter_reference",
            "reason",
            "scope",
            "patient_id",
            "accession_numbers",
            "date_from",
            "date_to",
            "placed_by",
            "placed_at",
            "released_by",
            "released_at",
            "release_reason",
            "is_active",
        ]

    def get_accession_numbers(self, hold: LegalHold) -> list[str]:
        """The held studies' accession numbers (prefetched by the list view)."""
        return sorted(study.accession_number for study in hold.studies.all())


class HoldListCreate(generics.GenericAPIView):
    """GET lists holds (newest first, ``?active=true|false``); POST places one."""

    pagination_class = IdCursorPagination
    serializer_class = HoldOutput

    def get_permissions(self) -> list[BasePermission]:
        return [CanManageHolds()] if self.request.method == "POST" else [CanReadHolds()]

    def get_queryset(self) -> QuerySet[LegalHold]:
        qs = LegalHold.objects.select_related("placed_by", "released_by").prefetch_related("studies")
        active = self.request.query_params.get("active")
        if active in ("true", "false"):
            qs = qs.filter(released_at__isnull=active == "true")
        elif active is not None:
            raise ValidationError({"active": "Use true or false."})
        return qs

    @extend_schema(
        parameters=[OpenApiParameter("active", str, OpenApiParameter.QUERY, required=False)],
        responses=HoldOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        # Holds name patients and studies: reading them is an access like any other.
        with transaction.atomic():
            audit.record(
                "legal_hold.list",
                actor=request.user,
                context=audit.AuditContext.from_request(request),
                object_type="legal_hold",
                details={"ids": [hold.pk for hold in page]},
            )
        return self.get_paginated_response(HoldOutput(page, many=True).data)

    @extend_schema(request=HoldInput, responses={201: HoldOutput})
    def post(self, request: Request) -> Response:
        data = HoldInput(data=request.data)
        data.is_valid(raise_exception=True)
        hold = services.legal_hold_place(
            actor=request.user,
            context=audit.AuditContext.from_request(request),
            **data.validated_data,
        )
        return Response(HoldOutput(hold).data, status=status.HTTP_201_CREATED)


class HoldRelease(APIView):
    """POST releases one hold, with a reason."""

    permission_classes = [CanManageHolds]

    @extend_schema(request=ReleaseInput, responses={200: HoldOutput})
    def post(self, request: Request, pk: int) -> Response:
        hold = LegalHold.objects.filter(pk=pk).first()
        if hold is None:
            raise NotFound("No such legal hold.")
        data = ReleaseInput(data=request.data)
        data.is_valid(raise_exception=True)
        hold = services.legal_hold_release(
            actor=request.user,
            context=audit.AuditContext.from_request(request),
            hold=hold,
            reason=data.validated_data["reason"],
        )
        return Response(HoldOutput(hold).data)


# --- Legal export packages -------------------------------------------------------------------------


class ExportInput(serializers.Serializer):
    """A package request: matter, reason, scope criteria (combined as documented in export/scope.py)."""

    matter_reference = serializers.CharField(max_length=128, trim_whitespace=False)
    reason = serializers.CharField(max_length=10_000, trim_whitespace=False)
    patient_mrn = serializers.CharField(max_length=64, required=False)
    accession_numbers = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        allow_empty=False,
        max_length=MAX_ACCESSIONS,
    )
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)
    model = serializers.CharField(max_length=200, required=False, help_text="NAME:VERSION")
    deidentify = serializers.BooleanField(required=False, default=False)


class ExportOutput(serializers.ModelSerializer):
    """A job as counsel sees it: status, progress, and (once ready) hash, size and download link."""

    requested_by = serializers.CharField(source="requested_by.username", default=None)
    progress = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportPackage
        fields = [
            "id",
            "package_id",
            "matter_reference",
            "reason",
            "scope",
            "requested_by",
            "requested_at",
            "status",
            "progress",
            "attempts",
            "started_at",
            "finished_at",
            "sha256",
            "size",
            "error",
            "deidentified",
            "deid_profile",
            "download_url",
        ]

    def get_progress(self, package: ExportPackage) -> dict:
        """Work done of work total (studies written twice, plus audit, FHIR and PDF steps)."""
        return {"done": package.progress_done, "total": package.progress_total}

    def get_download_url(self, package: ExportPackage) -> str | None:
        """Where to fetch the ZIP, once ready."""
        return f"/api/v1/legal/exports/{package.pk}/download" if package.status == "ready" else None


def _package(pk: int) -> ExportPackage:
    package = ExportPackage.objects.select_related("requested_by").filter(pk=pk).first()
    if package is None:
        raise NotFound("No such export package.")
    return package


class ExportListCreate(generics.GenericAPIView):
    """GET lists export jobs (newest first); POST requests a package (202: queued)."""

    permission_classes = [CanExportPackages]
    pagination_class = IdCursorPagination
    serializer_class = ExportOutput

    def get_queryset(self) -> QuerySet[ExportPackage]:
        return ExportPackage.objects.select_related("requested_by")

    @extend_schema(responses=ExportOutput(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ExportOutput(page, many=True).data)

    @extend_schema(request=ExportInput, responses={202: ExportOutput})
    def post(self, request: Request) -> Response:
        data = ExportInput(data=request.data)
        data.is_valid(raise_exception=True)
        package = export_jobs.export_request(
            actor=request.user, context=audit.AuditContext.from_request(request), **data.validated_data
        )
        return Response(ExportOutput(package).data, status=status.HTTP_202_ACCEPTED)


class ExportDetail(APIView):
    """GET one job (poll it for progress)."""

    permission_classes = [CanExportPackages]

    @extend_schema(responses={200: ExportOutput})
    def get(self, request: Request, pk: int) -> Response:
        return Response(ExportOutput(_package(pk)).data)


class ExportCancel(APIView):
    """POST cancels a queued or building job (409 once it is finished)."""

    permission_classes = [CanExportPackages]

    @extend_schema(request=None, responses={200: ExportOutput})
    def post(self, request: Request, pk: int) -> Response:
        package = export_jobs.export_cancel(
            actor=request.user, context=audit.AuditContext.from_request(request), package=_package(pk)
        )
        return Response(ExportOutput(package).data)


class ExportDownload(APIView):
    """GET streams a ready package's ZIP (409 until it is ready); every download is audited."""

    permission_classes = [CanExportPackages]

    @extend_schema(responses={(200, "application/zip"): bytes})
    def get(self, request: Request, pk: int) -> FileResponse:
        package = _package(pk)
        handle = export_jobs.export_download(
            actor=request.user, context=audit.AuditContext.from_request(request), package=package
        )
        response = FileResponse(
            handle,
            as_attachment=True,
            filename=f"concordance-export-{package.package_id}.zip",
            content_type="application/zip",
        )
        response["X-Content-SHA256"] = package.sha256
        response["Cache-Control"] = "no-store"
        return response
