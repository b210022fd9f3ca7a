"""Roles and access rules: the ONE module that decides who may see what.

Roles are Django groups named after :class:`Role`. A user may hold several roles; access is the union.
Views, API endpoints and selectors ask this module and nothing else.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from audit import log as audit


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
        audit.cache_actor_kind(user, is_service="integration" in names)  # type: ignore[arg-type]
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


# Live drafting runs the local model for a study: the RIS/reporting system's service account, and
# radiologists reading a study (before they sign it, so not limited to studies they have signed).
DRAFT_ROLES = frozenset({Role.INTEGRATION, Role.RADIOLOGIST, Role.ADMIN})


def can_draft(user: UserLike | None) -> bool:
    """May this account ask the local model for a draft (POST /api/v1/drafts)?"""
    return has_any_role(user, DRAFT_ROLES)


AUDIT_STATUS_ROLES = frozenset({Role.AUDITOR, Role.LEGAL, Role.QA_CHAIR, Role.ADMIN})
# The integration admin watches the interfaces (inbound log, replay) and links clinicians to accounts.
INTERFACE_ADMIN_ROLES = frozenset({Role.ADMIN})
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


# Counsel builds and downloads legal export packages (anyone may verify one: the verifier is offline).
EXPORT_ROLES = frozenset({Role.LEGAL, Role.ADMIN})


def can_export_packages(user: UserLike | None) -> bool:
    """May this account request, list, cancel and download legal export packages?"""
    return has_any_role(user, EXPORT_ROLES)


# Re-inference runs: the QA chair (and admins) start and cancel them; QA and audit read them.
REINFERENCE_RUN_ROLES = frozenset({Role.QA_CHAIR, Role.ADMIN})
REINFERENCE_VIEW_ROLES = frozenset({Role.QA_REVIEWER, Role.QA_CHAIR, Role.AUDITOR, Role.ADMIN})


def can_run_reinference(user: UserLike | None) -> bool:
    """May this account create and cancel re-inference runs?"""
    return has_any_role(user, REINFERENCE_RUN_ROLES)


def can_view_reinference(user: UserLike | None) -> bool:
    """May this account list re-inference runs and read their progress, results and summaries?"""
    return has_any_role(user, REINFERENCE_VIEW_ROLES)


# The model registry: those who judge AI output read model cards; the QA chair (who answers for the
# drafts the committee reviews) and admins choose which version serves and retire old ones.
MODEL_VIEW_ROLES = frozenset({Role.QA_REVIEWER, Role.QA_CHAIR, Role.AUDITOR, Role.LEGAL, Role.ADMIN})
MODEL_MANAGE_ROLES = frozenset({Role.QA_CHAIR, Role.ADMIN})


def can_view_models(user: UserLike | None) -> bool:
    """May this account list registered model versions and read their cards, metrics and hashes?"""
    return has_any_role(user, MODEL_VIEW_ROLES)


def can_manage_models(user: UserLike | None) -> bool:
    """May this account activate or retire a model version (audited by the registry)?"""
    return has_any_role(user, MODEL_MANAGE_ROLES)


# The legal page searches studies by patient, places holds and builds export packages: counsel only.
LEGAL_PAGE_ROLES = EXPORT_ROLES | HOLD_MANAGE_ROLES


def can_use_legal_page(user: UserLike | None) -> bool:
    """May this account open the legal page (study search, holds, export packages)?"""
    return has_any_role(user, LEGAL_PAGE_ROLES)


def can_manage_interfaces(user: UserLike | None) -> bool:
    """May this account see the inbound message log, replay messages and link clinicians to accounts?"""
    return has_any_role(user, INTERFACE_ADMIN_ROLES)


def can_view_audit_status(user: UserLike | None) -> bool:
    """May this account see the audit log's integrity status (checkpoints, verifications)?"""
    return has_any_role(user, AUDIT_STATUS_ROLES)


# The health of database, broker and workers (no clinical data): admins on the page, and service
# accounts through the API so that a monitoring system needs no admin login.
SYSTEM_HEALTH_ROLES = frozenset({Role.ADMIN, Role.INTEGRATION})


def can_view_system_health(user: UserLike | None) -> bool:
    """May this account read the health of database, broker and workers?"""
    return has_any_role(user, SYSTEM_HEALTH_ROLES)


def visible_studies(user: UserLike | None, studies: QuerySet) -> QuerySet:
    """Restrict a Study queryset to what ``user`` may see.

    A radiologist sees the studies they signed a report for, through the clinicians linked to their
    account (so a reader linked after the fact sees the reports signed before); read-all roles see
    every study; anyone else sees nothing.
    """
    if can_read_all_records(user):
        return studies
    if has_any_role(user, {Role.RADIOLOGIST}):
        return studies.filter(signed_reports__clinician__account=user).distinct()
    return studies.none()


# --- Review workflow (QA queue, case, adjudication, feedback, dashboard) ---------------------------
# Who may browse the QA queue, open any case and see the dashboard. Legal and auditors read only.
REVIEW_READ_ROLES = frozenset({Role.QA_REVIEWER, Role.QA_CHAIR, Role.LEGAL, Role.AUDITOR, Role.ADMIN})
# Who may score cases (RADPEER) and send feedback.
ADJUDICATE_ROLES = frozenset({Role.QA_REVIEWER, Role.QA_CHAIR, Role.ADMIN})
# Who runs the committee: assigns cases, draws sampling campaigns, reads names and OPPE summaries.
REVIEW_CHAIR_ROLES = frozenset({Role.QA_CHAIR, Role.ADMIN})


def can_view_review_queue(user: UserLike | None) -> bool:
    """May this account browse the QA queue and open every case (read only for legal and auditors)?"""
    return has_any_role(user, REVIEW_READ_ROLES)


def can_view_case(user: UserLike | None, *, radiologist_id: int | None) -> bool:
    """May this account open a case: any case for queue readers, their own for radiologists."""
    if can_view_review_queue(user):
        return True
    return has_any_role(user, {Role.RADIOLOGIST}) and radiologist_id is not None and radiologist_id == user.pk


def can_adjudicate(user: UserLike | None, *, radiologist_id: int | None = None) -> bool:
    """May this account score a case? Never a case whose report the account signed itself."""
    if not has_any_role(user, ADJUDICATE_ROLES):
        return False
    return radiologist_id is None or radiologist_id != user.pk


def can_assign(user: UserLike | None) -> bool:
    """May this account assign cases to reviewers and draw sampling campaigns?"""
    return has_any_role(user, REVIEW_CHAIR_ROLES)


def can_view_review_dashboard(user: UserLike | None) -> bool:
    """May this account see the department's discrepancy dashboard?"""
    return has_any_role(user, REVIEW_READ_ROLES)


def sees_radiologist_names(user: UserLike | None) -> bool:
    """Does this account see radiologists' names? Everyone else sees stable pseudonyms."""
    return has_any_role(user, REVIEW_CHAIR_ROLES)


def can_receive_feedback(user: UserLike | None) -> bool:
    """Has this account a 'My feedback' page (its own cases and the committee's comments)?"""
    return has_any_role(user, {Role.RADIOLOGIST})


def can_view_performance_summaries(user: UserLike | None) -> bool:
    """May this account read and export the OPPE/FPPE summary of every radiologist?"""
    return has_any_role(user, REVIEW_CHAIR_ROLES)


# Top-level pages, for the navigation: a link is shown only to the roles that may use the page (each
# page still checks its own rule). Keys are the navigation's page keys (portal/accounts/navigation.py).
# The sets are the pages' own rules above, so the links and the pages cannot disagree.
PAGE_ROLES: dict[str, frozenset[Role]] = {
    "dashboard": REVIEW_READ_ROLES,
    "qa_queue": REVIEW_READ_ROLES,
    "my_feedback": frozenset({Role.RADIOLOGIST}),
    "inbox": frozenset({Role.RADIOLOGIST}) | ADJUDICATE_ROLES,  # portal/peer: feedback and assignments
    "reinference": REINFERENCE_VIEW_ROLES,
    "models": MODEL_VIEW_ROLES,
    "legal": LEGAL_PAGE_ROLES,
    "audit": AUDIT_STATUS_ROLES,
    "health": frozenset({Role.ADMIN}),  # the integration account may read the JSON, no page
    "interfaces": INTERFACE_ADMIN_ROLES,
    "clinicians": INTERFACE_ADMIN_ROLES,
    "administration": frozenset({Role.ADMIN}),
}


# Accounts, roles, sessions and API tokens (the administration pages): admins only.
ACCOUNT_ADMIN_ROLES = frozenset({Role.ADMIN})


def can_administer_accounts(user: UserLike | None) -> bool:
    """May this account create users, change roles, end sessions and issue API tokens?"""
    return has_any_role(user, ACCOUNT_ADMIN_ROLES)


def can_open_page(user: UserLike | None, page: str) -> bool:
    """May this account open the top-level page ``page`` (a key of PAGE_ROLES; unknown keys: no)?"""
    return has_any_role(user, PAGE_ROLES.get(page, frozenset()))


def must_use_second_factor(user: UserLike | None, required_roles: Iterable[str]) -> bool:
    """Must this account sign in with a second factor (it holds one of ``required_roles``)?"""
    wanted = {Role(name) for name in required_roles if name in Role._value2member_map_}
    return has_any_role(user, wanted)


def is_api_only(user: UserLike | None) -> bool:
    """Is this a service account that may use the API but no page (integration role and nothing else)?"""
    held = roles_of(user)
    return Role.INTEGRATION in held and not (held - {Role.INTEGRATION})
