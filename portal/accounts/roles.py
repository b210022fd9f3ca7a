"""Roles and access rules: the ONE module that decides who may see what.

Roles are Django groups named after :class:`Role`. A user may hold several roles; access is the union.
Views, API endpoints and selectors ask this module and nothing else.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet


class Role(enum.StrEnum):
    """The people (and systems) who use Concordance."""

    RADIOLOGIST = "radiologist"
    QA_REVIEWER = "qa_reviewer"
    QA_CHAIR = "qa_chair"
    LEGAL = "legal"
    AUDITOR = "auditor"
    INTEGRATION = "integration"  # RIS/PACS/model-server service accounts: API only
    ADMIN = "admin"


# Who may write clinical records through the ingestion interfaces.
INGEST_ROLES = frozenset({Role.INTEGRATION, Role.ADMIN})
# Who may read every clinical record (radiologists read only their own cases).
READ_ALL_ROLES = frozenset(
    {Role.QA_REVIEWER, Role.QA_CHAIR, Role.LEGAL, Role.AUDITOR, Role.ADMIN, Role.INTEGRATION}
)
# Who may compare texts ad hoc through the API.
COMPARE_ROLES = frozenset({Role.QA_REVIEWER, Role.QA_CHAIR, Role.RADIOLOGIST, Role.ADMIN, Role.INTEGRATION})

UserLike = AbstractBaseUser | AnonymousUser


def roles_of(user: UserLike | None) -> frozenset[Role]:
    """The roles a user holds; cached on the user object for the request."""
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    cached = getattr(user, "_concordance_roles", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))  # type: ignore[union-attr]
        cached = frozenset(Role(name) for name in names if name in Role._value2member_map_)
        if user.is_superuser:  # type: ignore[union-attr]
            cached = cached | {Role.ADMIN}
        user._concordance_roles = cached  # type: ignore[union-attr]
    return cached


def has_any_role(user: UserLike | None, roles: Iterable[Role]) -> bool:
    """True when the user holds at least one of ``roles``."""
    return bool(roles_of(user) & frozenset(roles))


def can_ingest(user: UserLike | None) -> bool:
    """May this account write studies, AI outputs and signed reports?"""
    return has_any_role(user, INGEST_ROLES)


def can_read_all_records(user: UserLike | None) -> bool:
    """May this account read every study (not only its own cases)?"""
    return has_any_role(user, READ_ALL_ROLES)


def can_read_records(user: UserLike | None) -> bool:
    """May this account read clinical records at all (all, or only its own)?"""
    return can_read_all_records(user) or has_any_role(user, {Role.RADIOLOGIST})


def can_compare(user: UserLike | None) -> bool:
    """May this account run the discrepancy engine on texts it supplies?"""
    return has_any_role(user, COMPARE_ROLES)


AUDIT_STATUS_ROLES = frozenset({Role.AUDITOR, Role.LEGAL, Role.QA_CHAIR, Role.ADMIN})
# Counsel places and lifts holds; those who oversee QA and audit may see them.
HOLD_MANAGE_ROLES = frozenset({Role.LEGAL, Role.ADMIN})
HOLD_READ_ROLES = frozenset({Role.LEGAL, Role.AUDITOR, Role.QA_CHAIR, Role.ADMIN})
# Proofs let an outside party check the log against checkpoints it holds.
PROOF_READ_ROLES = frozenset({Role.AUDITOR, Role.LEGAL, Role.ADMIN})


def can_manage_holds(user: UserLike | None) -> bool:
    """May this account place and release legal holds?"""
    return has_any_role(user, HOLD_MANAGE_ROLES)


def can_read_holds(user: UserLike | None) -> bool:
    """May this account list legal holds?"""
    return has_any_role(user, HOLD_READ_ROLES)


def can_read_proofs(user: UserLike | None) -> bool:
    """May this account read signed checkpoints and Merkle proofs of the audit log?"""
    return has_any_role(user, PROOF_READ_ROLES)


def can_view_audit_status(user: UserLike | None) -> bool:
    """May this account see the audit log's integrity status (checkpoints, verifications)?"""
    return has_any_role(user, AUDIT_STATUS_ROLES)


def visible_studies(user: UserLike | None, studies: QuerySet) -> QuerySet:
    """Restrict a Study queryset to what ``user`` may see.

    A radiologist sees the studies they signed a report for; read-all roles see every study; anyone
    else sees nothing.
    """
    if can_read_all_records(user):
        return studies
    if has_any_role(user, {Role.RADIOLOGIST}):
        return studies.filter(signed_reports__radiologist=user).distinct()
    return studies.none()
