"""DRF permission classes that delegate to :mod:`portal.accounts.roles`."""

from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from portal.accounts import roles


class CanIngest(BasePermission):
    """Writes through the ingestion interfaces: integration accounts and admins."""

    message = "This account may not write clinical records."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return roles.can_ingest(request.user)


class CanReadRecords(BasePermission):
    """Reads of clinical records: read-all roles, and radiologists (filtered to their own cases)."""

    message = "This account may not read clinical records."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return roles.can_read_records(request.user)


class CanCompare(BasePermission):
    """Ad hoc comparison of two texts."""

    message = "This account may not run comparisons."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return roles.can_compare(request.user)


class CanRunReinference(BasePermission):
    """Creating and cancelling re-inference runs."""

    message = "This account may not start or cancel re-inference runs."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return roles.can_run_reinference(request.user)


class CanViewReinference(BasePermission):
    """Reading re-inference runs, their results and summaries."""

    message = "This account may not read re-inference runs."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return roles.can_view_reinference(request.user)


class CanDraft(BasePermission):
    """Live drafting with the local model."""

    message = "This account may not request AI drafts."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return roles.can_draft(request.user)


class CanManageHolds(BasePermission):
    """Placing and releasing legal holds."""

    message = "This account may not place or release legal holds."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return roles.can_manage_holds(request.user)


class CanReadHolds(BasePermission):
    """Listing legal holds."""

    message = "This account may not read legal holds."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return roles.can_read_holds(request.user)


class CanReadProofs(BasePermission):
    """Reading signed checkpoints and Merkle proofs of the audit log."""

    message = "This account may not read audit proofs."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return roles.can_read_proofs(request.user)


class CanExportPackages(BasePermission):
    """Requesting, listing, cancelling and downloading legal export packages."""

    message = "This account may not export legal packages."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return roles.can_export_packages(request.user)


class CanViewSystemHealth(BasePermission):
    """The health report of database, broker and workers: admins and monitoring service accounts."""

    message = "This account may not read the system's health."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return roles.can_view_system_health(request.user)
