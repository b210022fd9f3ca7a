"""Administration workflows: accounts, roles, deactivation, sessions and API tokens, each audited.

Every function is keyword-only, runs in one transaction with its audit event, and raises
:class:`AdministrationError` (nothing written) when the change cannot be made. Passwords, token
secrets and session keys never reach the audit log.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, Group, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import log as audit
from portal.accounts import sessions, tokens
from portal.accounts.models import ApiToken, DirectoryIdentity
from portal.accounts.roles import Role, roles_of
from portal.administration.errors import AdministrationError

USER_OBJECT = "auth.user"
TOKEN_OBJECT = "accounts.apitoken"  # noqa: S105 - an object type, not a secret


def _audit(
    action: str, *, actor: Any, context: audit.AuditContext, object_type: str, object_id: Any, **details: Any
) -> None:
    audit.record(
        action, actor=actor, context=context, object_type=object_type, object_id=object_id, details=details
    )


def _role_groups(names: Iterable[str]) -> list[Group]:
    wanted = sorted(set(names))
    unknown = [name for name in wanted if name not in Role._value2member_map_]
    if unknown:
        raise AdministrationError("Unknown role.")
    return [Group.objects.get_or_create(name=name)[0] for name in wanted]


def is_directory_managed(user: AbstractBaseUser) -> bool:
    """Are this account's roles and state decided by the hospital's directory?"""
    return DirectoryIdentity.objects.filter(user=user).exists()


@transaction.atomic
def user_create(
    *,
    username: str,
    email: str,
    first_name: str,
    last_name: str,
    role_names: Iterable[str],
    password: str,
    actor: Any,
    context: audit.AuditContext,
) -> User:
    """A local account holding ``role_names``; without a password it cannot sign in with one."""
    groups = _role_groups(role_names)
    if User.objects.filter(username__iexact=username).exists():
        raise AdministrationError("An account with this username exists already.")
    user = User(username=username, email=email, first_name=first_name, last_name=last_name)
    if password:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise AdministrationError(" ".join(exc.messages)) from exc
        user.set_password(password)
    else:
        user.set_unusable_password()
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # a concurrent create of the same name
        raise AdministrationError("An account with this username exists already.") from exc
    user.groups.set(groups)
    _audit(
        "account.create",
        actor=actor,
        context=context,
        object_type=USER_OBJECT,
        object_id=user.pk,
        username=user.username,
        roles=[group.name for group in groups],
        password_set=bool(password),
    )
    return user


@transaction.atomic
def user_set_roles(*, user: User, role_names: Iterable[str], actor: Any, context: audit.AuditContext) -> User:
    """Replace the account's roles (groups named after roles; other groups are left as they are)."""
    if is_directory_managed(user):
        raise AdministrationError("This account's roles come from the directory: change them there.")
    groups = _role_groups(role_names)
    new = {group.name for group in groups}
    if user.pk == getattr(actor, "pk", None) and Role.ADMIN.value not in new and not user.is_superuser:
        raise AdministrationError("You cannot take the admin role from your own account.")
    old = set(user.groups.filter(name__in=list(Role._value2member_map_)).values_list("name", flat=True))
    if old == new:
        return user
    user.groups.remove(*Group.objects.filter(name__in=sorted(old - new)))
    user.groups.add(*[group for group in groups if group.name not in old])
    user.__dict__.pop("_concordance_roles", None)
    _audit(
        "account.roles_change",
        actor=actor,
        context=context,
        object_type=USER_OBJECT,
        object_id=user.pk,
        added=sorted(new - old),
        removed=sorted(old - new),
    )
    return user


@transaction.atomic
def user_deactivate(*, user: User, reason: str, actor: Any, context: audit.AuditContext) -> int:
    """Switch the account off and end its sessions at once; how many sessions ended.

    Its API tokens stop working too (authentication refuses inactive accounts).
    """
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise AdministrationError("Give a reason (at most 500 characters).")
    if user.pk == getattr(actor, "pk", None):
        raise AdministrationError("You cannot deactivate your own account.")
    if not user.is_active:
        raise AdministrationError("This account is already deactivated.")
    user.is_active = False
    user.save(update_fields=["is_active"])
    ended = sessions.end_sessions(user_id=user.pk)
    _audit(
        "account.deactivate",
        actor=actor,
        context=context,
        object_type=USER_OBJECT,
        object_id=user.pk,
        reason=reason,
        sessions_ended=ended,
    )
    return ended


@transaction.atomic
def user_reactivate(*, user: User, actor: Any, context: audit.AuditContext) -> User:
    """Switch a deactivated account on again (a directory account only signs in if its directory agrees)."""
    if user.is_active:
        raise AdministrationError("This account is active already.")
    user.is_active = True
    user.save(update_fields=["is_active"])
    DirectoryIdentity.objects.filter(user=user).update(disabled_by_directory=False)
    _audit("account.reactivate", actor=actor, context=context, object_type=USER_OBJECT, object_id=user.pk)
    return user


@transaction.atomic
def session_end(*, user: User, session_id: str, actor: Any, context: audit.AuditContext) -> None:
    """End one signed-in session of ``user`` (named by its public id); refuses an unknown one."""
    if sessions.end_sessions(user_id=user.pk, only=session_id) != 1:
        raise AdministrationError("No such session (it may have ended already).")
    _audit(
        "account.session_end",
        actor=actor,
        context=context,
        object_type=USER_OBJECT,
        object_id=user.pk,
        session=session_id,
    )


def _issue(*, user: User, name: str, actor: Any) -> tuple[ApiToken, str]:
    secret = tokens.new_secret()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=tokens.display_prefix(secret),
        digest=tokens.digest_of(secret),
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    return token, secret


@transaction.atomic
def api_token_create(
    *, user: User, name: str, actor: Any, context: audit.AuditContext
) -> tuple[ApiToken, str]:
    """Issue a token for an integration account; the secret is returned once and never stored."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise AdministrationError("Name the token (at most 100 characters), e.g. the system that uses it.")
    if Role.INTEGRATION not in roles_of(user):
        raise AdministrationError(
            "API tokens are for integration accounts: give this account that role first."
        )
    token, secret = _issue(user=user, name=name, actor=actor)
    _audit(
        "api_token.create",
        actor=actor,
        context=context,
        object_type=TOKEN_OBJECT,
        object_id=token.pk,
        account_id=user.pk,
        name=name,
        prefix=token.prefix,
    )
    return token, secret


@transaction.atomic
def api_token_rotate(*, token: ApiToken, actor: Any, context: audit.AuditContext) -> tuple[ApiToken, str]:
    """Revoke ``token`` and issue its replacement (same account and name) in one step."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        raise AdministrationError("This token is revoked: issue a new one instead.")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    new, secret = _issue(user=token.user, name=token.name, actor=actor)
    _audit(
        "api_token.rotate",
        actor=actor,
        context=context,
        object_type=TOKEN_OBJECT,
        object_id=new.pk,
        account_id=token.user_id,
        replaces=token.pk,
        prefix=new.prefix,
    )
    return new, secret


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor: Any, context: audit.AuditContext) -> ApiToken:
    """Revoke ``token``: the next API call with it gets 401."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        raise AdministrationError("This token is revoked already.")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    _audit(
        "api_token.revoke",
        actor=actor,
        context=context,
        object_type=TOKEN_OBJECT,
        object_id=token.pk,
        account_id=token.user_id,
    )
    return token
