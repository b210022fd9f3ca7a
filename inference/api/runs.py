"""REST views for re-inference runs: list, create, detail, cancel, results and summary.

QA chairs and admins start and cancel runs; QA reviewers, chairs, auditors and admins read them
(:func:`portal.accounts.roles.can_view_reinference`). Reading results shows report texts, so each page
of results is an audited access like any other read of patient data.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import log as audit
from inference import selectors
from inference.models import ReinferenceResult, ReinferenceRun, ResultStatus, RunStatus
from inference.reinference import runs
from inference.reinference.cohort import MAX_SAMPLE, MAX_SEED, CohortFilter
from portal.accounts.permissions import CanRunReinference, CanViewReinference
from portal.core.pagination import IdCursorPagination
from portal.core.serializers import StrictInput
from portal.records.models import AIOutputKind, Specialty


class RunInput(StrictInput):
    """A new run: the model (``NAME:VERSION`` or id), the kind, and the cohort filter. Unknown keys: 400."""

    model = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=AIOutputKind.choices, default=AIOutputKind.REPORT_DRAFT)
    specialty = serializers.ChoiceField(choices=Specialty.choices, required=False)
    modality = serializers.RegexField(r"^[A-Za-z0-9]{1,16}$", required=False)
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)
    radiologist = serializers.RegexField(r"^[\w.@+-]{1,150}$", required=False)
    sample = serializers.IntegerField(min_value=1, max_value=MAX_SAMPLE, required=False)
    seed = serializers.IntegerField(min_value=0, max_value=MAX_SEED, default=0)
    chunk_size = serializers.IntegerField(min_value=1, max_value=1024, required=False)


class RunOutput(serializers.ModelSerializer):
    """A run as the portal shows it, with its live progress."""

    model_version = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = ReinferenceRun
        fields = [
            "id",
            "model_version",
            "kind",
            "cohort_filter",
            "status",
            "chunk_size",
            "total",
            "done",
            "failed",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "progress",
        ]

    def get_model_version(self, run: ReinferenceRun) -> dict[str, Any]:
        """Id, name and version of the model the run re-runs."""
        mv = run.model_version
        return {"id": mv.pk, "name": mv.name, "version": mv.version}

    def get_progress(self, run: ReinferenceRun) -> dict[str, Any]:
        """Done, failed, total, rate, ETA and (one run, not a list) liveness; see ``run_progress``."""
        return selectors.run_progress(run, liveness=not self.context.get("in_list", False))


class ResultOutput(serializers.ModelSerializer):
    """One study's result: the new text, its reproduction flag and both comparisons."""

    accession_number = serializers.CharField(source="study.accession_number")

    class Meta:
        model = ReinferenceResult
        fields = [
            "id",
            "study",
            "accession_number",
            "original",
            "reference",
            "status",
            "error",
            "text",
            "text_sha256",
            "prompt_tokens",
            "completion_tokens",
            "latency_ms",
            "reproduced",
            "radpeer_suggested",
            "significant_count",
            "minor_count",
            "categories",
            "discrepancies",
            "original_radpeer",
            "original_significant_count",
            "original_minor_count",
            "original_categories",
            "created_at",
        ]


def _run_or_404(pk: int) -> ReinferenceRun:
    run = selectors.runs_list().filter(pk=pk).first()
    if run is None:
        raise NotFound("No such re-inference run.")
    return run


class RunListCreate(generics.GenericAPIView):
    """GET lists runs (newest first, ``?status=``); POST creates one (QA chair, admin)."""

    pagination_class = IdCursorPagination
    serializer_class = RunOutput

    def get_permissions(self) -> list[BasePermission]:
        return [CanRunReinference()] if self.request.method == "POST" else [CanViewReinference()]

    def get_queryset(self) -> QuerySet[ReinferenceRun]:
        qs = selectors.runs_list()
        wanted = self.request.query_params.get("status")
        if wanted is not None:
            if wanted not in RunStatus.values:
                raise ValidationError({"status": "Unknown run status."})
            qs = qs.filter(status=wanted)
        return qs

    @extend_schema(
        parameters=[OpenApiParameter("status", str, OpenApiParameter.QUERY, required=False)],
        responses=RunOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(RunOutput(page, many=True, context={"in_list": True}).data)

    @extend_schema(request=RunInput, responses={201: RunOutput})
    def post(self, request: Request) -> Response:
        data = RunInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        cohort = CohortFilter(
            specialty=values.get("specialty", ""),
            modality=values.get("modality", ""),
            date_from=values.get("date_from"),
            date_to=values.get("date_to"),
            radiologist=values.get("radiologist", ""),
            sample=values.get("sample"),
            seed=values["seed"],
        )
        run = runs.reinference_run_create(
            model_version=values["model"],
            kind=values["kind"],
            cohort=cohort,
            chunk_size=values.get("chunk_size"),
            actor=request.user,
            context=audit.AuditContext.from_request(request),
        )
        run = _run_or_404(run.pk)
        return Response(RunOutput(run).data, status=status.HTTP_201_CREATED)


class RunDetail(APIView):
    """GET one run with its progress and the state of its chunks."""

    permission_classes = [CanViewReinference]

    @extend_schema(responses=RunOutput)
    def get(self, request: Request, pk: int) -> Response:
        run = _run_or_404(pk)
        body = RunOutput(run).data
        body["chunks"] = selectors.chunk_counts(run)
        return Response(body)


class RunCancel(APIView):
    """POST cancels a queued or running run (409 when it has already ended)."""

    permission_classes = [CanRunReinference]

    @extend_schema(request=None, responses=RunOutput)
    def post(self, request: Request, pk: int) -> Response:
        run = _run_or_404(pk)
        run = runs.reinference_run_cancel(
            run=run, actor=request.user, context=audit.AuditContext.from_request(request)
        )
        return Response(RunOutput(_run_or_404(run.pk)).data)


class ResultPagination(CursorPagination):
    """Results in the order they were stored; keyset on the primary key."""

    ordering = "id"
    page_size_query_param = "page_size"
    max_page_size = 200


class RunResults(generics.GenericAPIView):
    """GET a run's results (``?status=ok|failed``), cursor-paginated; every page is an audited read."""

    permission_classes = [CanViewReinference]
    pagination_class = ResultPagination
    serializer_class = ResultOutput

    @extend_schema(
        parameters=[OpenApiParameter("status", str, OpenApiParameter.QUERY, required=False)],
        responses=ResultOutput(many=True),
    )
    def get(self, request: Request, pk: int) -> Response:
        run = _run_or_404(pk)
        wanted = request.query_params.get("status")
        if wanted is not None and wanted not in ResultStatus.values:
            raise ValidationError({"status": "Use ok or failed."})
        page = self.paginate_queryset(selectors.run_results(run, status=wanted))
        with transaction.atomic():
            audit.record(
                "reinference_result.list",
                actor=request.user,
                context=audit.AuditContext.from_request(request),
                object_type="reinference_run",
                object_id=run.pk,
                details={"ids": [result.pk for result in page], "studies": [r.study_id for r in page]},
            )
        return self.get_paginated_response(ResultOutput(page, many=True).data)


class RunSummary(APIView):
    """GET the run summary: new version against the original on the same studies."""

    permission_classes = [CanViewReinference]

    @extend_schema(responses=dict)
    def get(self, request: Request, pk: int) -> Response:
        return Response(selectors.run_summary(_run_or_404(pk)))
