"""The clinician directory: who signed a report, as the hospital's systems name them.

Feeds identify a signer by (assigning authority, identifier). A key seen for the first time becomes a
new clinician on the spot, so a locum's or an outside reader's report is stored rather than refused;
an admin links clinicians to portal accounts later (:func:`clinician_link`), and several keys may be
linked to one account. The portal's own REST API still names signers by account username: such an
account is its own clinician under the authority :data:`PORTAL_AUTHORITY`.

On first sight a clinician whose identifier equals (case-insensitively) the username of an active
radiologist account is linked to it at once: hospitals whose directory sign-in uses the RIS provider
id as the username need no manual linking. Every creation and link is an audit event.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from audit import log as audit
from portal.accounts.roles import Role
from portal.core.errors import InvalidRecord, RecordConflict, RecordNotFound
from portal.records.ingest.payloads import ClinicianPayload, SignedReportPayload
from portal.records.models import PORTAL_AUTHORITY, Clinician
from portal.records.units import ingest_unit, remember, remembered

_NAME_FIELDS = ("family_name", "given_name", "middle_name", "prefix", "suffix")
User = get_user_model()


def _radiologist_account(username: str) -> AbstractBaseUser | None:
    """The active account with this username (case-insensitively), if it holds the radiologist role.

    One query (the role by a join), read once per ingest unit.
    """

    accounts = User.objects.filter(username__iexact=username, is_active=True, groups__name=Role.RADIOLOGIST)
    return remembered(("radiologist", username.lower()), lambda: accounts.order_by("pk").first())


def clinician_by_key(authority: str, identifier: str) -> Clinician | None:
    """The clinician stored under (assigning authority, identifier), read once per ingest unit."""
    return remembered(
        ("clinician", authority, identifier),
        lambda: Clinician.objects.filter(authority=authority, identifier=identifier).first(),
    )


def _audit_clinician(
    action: str, clinician: Clinician, actor: AbstractBaseUser | None, context: audit.AuditContext, **details
) -> None:
    audit.record(
        action,
        actor=actor,
        context=context,
        object_type="clinician",
        object_id=clinician.pk,
        details={"authority": clinician.authority, **details},
    )


def _create(
    payload: ClinicianPayload,
    account: AbstractBaseUser | None,
    actor: AbstractBaseUser | None,
    context: audit.AuditContext,
) -> Clinician:
    names = {name: getattr(payload, name) for name in _NAME_FIELDS}
    try:
        with transaction.atomic():
            clinician = Clinician.objects.create(
                authority=payload.authority, identifier=payload.identifier, account=account, **names
            )
    except IntegrityError:
        # A concurrent message brought the same new clinician: use the row it stored.
        return Clinician.objects.get(authority=payload.authority, identifier=payload.identifier)
    remember(("clinician", payload.authority, payload.identifier), clinician)
    _audit_clinician(
        "clinician.create", clinician, actor, context, linked_account_id=account.pk if account else None
    )
    return clinician


def _fill_names(
    clinician: Clinician,
    payload: ClinicianPayload,
    actor: AbstractBaseUser | None,
    context: audit.AuditContext,
) -> None:
    changed = [n for n in _NAME_FIELDS if getattr(payload, n) and not getattr(clinician, n)]
    if not changed:
        return
    for name in changed:
        setattr(clinician, name, getattr(payload, name))
    clinician.save(update_fields=changed)
    _audit_clinician("clinician.update", clinician, actor, context, filled=changed)


@ingest_unit()
def clinician_resolve(
    *, payload: ClinicianPayload, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> Clinician:
    """The clinician a feed names: found by key (or FHIR Practitioner reference), else created."""
    if payload.fhir_reference:
        logical_id = payload.fhir_reference.removeprefix("Practitioner/")
        clinician = Clinician.objects.filter(fhir_id=logical_id).first()
        if clinician is None:
            raise RecordNotFound(
                "The Practitioner this report references is unknown; post it first or send its identifier.",
                field="resultsInterpreter",
            )
        return clinician
    clinician = clinician_by_key(payload.authority, payload.identifier)
    if clinician is None:
        return _create(payload, _radiologist_account(payload.identifier), actor, context)
    _fill_names(clinician, payload, actor, context)
    return clinician


def clinician_for_account(
    *, user: AbstractBaseUser, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> Clinician:
    """The clinician that stands for a portal account in reports sent through the REST API."""
    payload = ClinicianPayload(
        authority=PORTAL_AUTHORITY,
        identifier=user.get_username()[:64],
        family_name=getattr(user, "last_name", "")[:128],
        given_name=getattr(user, "first_name", "")[:128],
    )
    clinician = clinician_by_key(PORTAL_AUTHORITY, payload.identifier)
    return clinician or _create(payload, user, actor, context)


def signer_resolve(
    *, payload: SignedReportPayload, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> tuple[Clinician, AbstractBaseUser | None]:
    """Who signed a report: the clinician, and the portal account it is linked to (if any)."""
    if payload.signer is not None:
        clinician = clinician_resolve(payload=payload.signer, actor=actor, context=context)
        return clinician, clinician.account
    user = _radiologist_account(payload.radiologist_username)
    if user is None or user.get_username() != payload.radiologist_username:
        raise InvalidRecord(
            "The signing radiologist is not a known, active radiologist account.", field="radiologist"
        )
    return clinician_for_account(user=user, actor=actor, context=context), user


@transaction.atomic
def clinician_link(
    *,
    clinician_id: int,
    account_id: int | None,
    actor: AbstractBaseUser | None,
    context: audit.AuditContext,
) -> Clinician:
    """Link a clinician to a radiologist's portal account (``account_id`` None unlinks). Audited.

    Reports already stored keep the account they were stored with; selectors that ask "whose case is
    this" go through ``clinician.account`` and so follow the link from now on.
    """
    clinician = Clinician.objects.select_for_update().filter(pk=clinician_id).first()
    if clinician is None:
        raise RecordNotFound("No such clinician.", field="clinician")
    account = None
    if account_id is not None:
        account = User.objects.filter(pk=account_id, is_active=True).first()
        if account is None or not account.groups.filter(name=Role.RADIOLOGIST).exists():
            raise InvalidRecord("Clinicians are linked only to active radiologist accounts.", field="account")
    if clinician.account_id == (account.pk if account else None):
        return clinician
    if clinician.account_id is not None and account is not None:
        raise RecordConflict("This clinician is linked to another account; unlink it first.", field="account")
    previous = clinician.account_id
    clinician.account = account
    clinician.save(update_fields=["account"])
    _audit_clinician(
        "clinician.link" if account else "clinician.unlink",
        clinician,
        actor,
        context,
        account_id=account.pk if account else None,
        previous_account_id=previous,
    )
    return clinician
