"""Pages and endpoints that belong to no single app: the landing page and the system's health."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts import roles
from portal.accounts.permissions import CanViewSystemHealth
from portal.core.access import deny
from portal.core.health import health_report
from portal.records import selectors
from portal.review.selectors import comparison_counts


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The landing page: what the record holds, as far as this user may see it."""
    return render(
        request,
        "portal/home.html",
        {
            "counts": selectors.record_counts(request.user),
            "comparisons": comparison_counts(request.user),
            "roles": sorted(role.value for role in roles.roles_of(request.user)),
            "can_view_audit_status": roles.can_view_audit_status(request.user),
        },
    )


def _http_status(report: dict) -> int:
    """200 when everything is up, 503 otherwise: monitoring systems alert on the status code."""
    return status.HTTP_200_OK if report["status"] == "ok" else status.HTTP_503_SERVICE_UNAVAILABLE


@login_required
def system_health(request: HttpRequest) -> HttpResponse:
    """The health page for admins: database, broker and workers, each with why it is in its state."""
    if not roles.can_open_page(request.user, "health"):
        deny(request, reason="system.health")
    # Always 200: the page is for people, who read the states; machines read the JSON's status code.
    return render(request, "portal/health.html", {"report": health_report()})


class _ComponentSerializer(serializers.Serializer):
    name = serializers.CharField()
    state = serializers.ChoiceField(choices=["ok", "down", "unknown"])
    detail = serializers.CharField()
    latency_ms = serializers.FloatField(allow_null=True)
    facts = serializers.DictField()


class _ComponentsSerializer(serializers.Serializer):
    database = _ComponentSerializer()
    broker = _ComponentSerializer()
    workers = _ComponentSerializer()


class HealthReportSerializer(serializers.Serializer):
    """The health report as :func:`portal.core.health.health_report` builds it (for the schema)."""

    status = serializers.ChoiceField(choices=["ok", "degraded", "unavailable"])
    checked_at = serializers.DateTimeField()
    components = _ComponentsSerializer()


class SystemHealthView(APIView):
    """The health report as JSON for monitoring systems: 200 when all is up, 503 with the reason if not."""

    permission_classes = [CanViewSystemHealth]

    @extend_schema(responses={200: HealthReportSerializer, 503: HealthReportSerializer})
    def get(self, request: Request) -> Response:
        """Probe database, broker and workers now (about a second at most per probe)."""
        report = health_report()
        return Response(report, status=_http_status(report))
