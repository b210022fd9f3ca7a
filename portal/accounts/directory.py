"""Accounts that the hospital's directory manages: their roles and their state follow the directory.

The LDAP and OpenID Connect backends call :func:`directory_signed_in` after the directory has vouched
for someone, and :func:`directory_disabled` when a re-check finds that it no longer does. Role groups
are replaced by what the directory grants (other groups stay); every change is audited.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from audit import log as audit
from portal.accounts import sessions
from portal.accounts.models import DirectoryIdentity
from portal.accounts.roles import Role

SYNC_WRITE = dt.timedelta(minutes=1)


class DirectoryRefusal(Exception):
    """The directory vouched for someone the portal will not sign in (the message says why)."""


def roles_for(
    groups: Iterable[str], mapping: Mapping[str, str], *, case_insensitive: bool = True
) -> set[str]:
    """The portal roles that ``groups`` (DNs or names, as the directory gives them) grant via ``mapping``."""
    found = {group.lower() if case_insensitive else group for group in groups}
    return {role for group, role in mapping.items() if group in found and role in Role._value2member_map_}


def identity_allows(user: User, *, source: str) -> bool:
    """May a sign-in from ``source`` use this existing account? Only when that directory created it.

    A local account with the same username is never taken over by the directory.
    """
    return DirectoryIdentity.objects.filter(user=user, source=source).exists()


def _sync_roles(user: User, granted: set[str], *, context: audit.AuditContext) -> None:
    held = set(user.groups.filter(name__in=list(Role._value2member_map_)).values_list("name", flat=True))
    if held == granted:
        return
    user.groups.remove(*Group.objects.filter(name__in=sorted(held - granted)))
    user.groups.add(*[Group.objects.get_or_create(name=name)[0] for name in sorted(granted - held)])
    user.__dict__.pop("_concordance_roles", None)
    audit.record(
        "auth.directory_roles",
        actor=None,
        context=context,
        object_type="auth.user",
        object_id=user.pk,
        details={"added": sorted(granted - held), "removed": sorted(held - granted)},
    )


@transaction.atomic
def directory_signed_in(
    user: User, *, source: str, subject: str, granted: set[str], context: audit.AuditContext
) -> User:
    """Record that the directory vouches for ``user`` now: link it, switch it on if the directory had
    switched it off, and give it the roles the directory grants. Raises DirectoryRefusal when an admin
    has deactivated the account in the portal (the directory does not overrule that)."""
    identity, created = DirectoryIdentity.objects.get_or_create(
        user=user, defaults={"source": source, "subject": subject}
    )
    if identity.source != source or identity.subject != subject:
        raise DirectoryRefusal("This account is linked to another directory entry.")
    if not user.is_active and not identity.disabled_by_directory:
        raise DirectoryRefusal("An administrator has deactivated this account.")
    if not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
        audit.record(
            "auth.directory_enabled", actor=None, context=context, object_type="auth.user", object_id=user.pk
        )
    if created:
        audit.record(
            "auth.directory_account",
            actor=None,
            context=context,
            object_type="auth.user",
            object_id=user.pk,
            details={"source": source, "username": user.username},
        )
    now = timezone.now()
    # The sync time is written at most once a minute: a re-check on every request must not mean a
    # database write on every request.
    if (
        identity.disabled_by_directory
        or not identity.last_synced_at
        or now - identity.last_synced_at > SYNC_WRITE
    ):
        identity.disabled_by_directory = False
        identity.last_synced_at = now
        identity.save(update_fields=["disabled_by_directory", "last_synced_at"])
    _sync_roles(user, granted, context=context)
    return user


@transaction.atomic
def directory_disabled(user: User, *, reason: str, context: audit.AuditContext) -> int:
    """The directory no longer vouches for ``user``: switch the account off and end all its sessions.

    The account can sign in again once the directory lets it (:func:`directory_signed_in`).
    """
    DirectoryIdentity.objects.filter(user=user).update(
        disabled_by_directory=True, last_synced_at=timezone.now()
    )
    User.objects.filter(pk=user.pk).update(is_active=False)
    ended = sessions.end_sessions(user_id=user.pk)
    audit.record(
        "auth.directory_disabled",
        actor=None,
        context=context,
        object_type="auth.user",
        object_id=user.pk,
        details={"reason": reason, "sessions_ended": ended},
    )
    return ended
