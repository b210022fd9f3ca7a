"""The admin role's pages: accounts (list, search, create), roles, deactivation, sessions, API tokens.

Views only translate: a form in, one service or selector call, a page out. Every page refuses other
roles with an audited 403 and answers ``Cache-Control: no-store`` (a token's secret is shown once).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit import log as audit
from portal.accounts import roles
from portal.accounts.models import ApiToken
from portal.administration import forms, selectors, services
from portal.administration.errors import AdministrationError
from portal.core.access import deny


def admin_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed in, admin role (else audited 403), never cached."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not roles.can_administer_accounts(request.user):
            deny(request, reason="administration")
        return view(request, *args, **kwargs)

    return never_cache(login_required(guarded))


def _context(request: HttpRequest) -> audit.AuditContext:
    return audit.AuditContext.from_request(request)


def _account_page(
    request: HttpRequest, user: User, *, error: str = "", secret: str = "", **extra: Any
) -> HttpResponse:
    context = {
        **selectors.account_detail(user),
        "roles_form": forms.RolesForm(initial={"roles": selectors.role_names(user)}),
        "deactivate_form": forms.DeactivateForm(),
        "token_form": forms.TokenForm(),
        "directory_managed": services.is_directory_managed(user),
        "error": error,
        "secret": secret,
        **extra,
    }
    return render(request, "administration/account.html", context, status=400 if error else 200)


@admin_page
@require_GET
def account_list(request: HttpRequest) -> HttpResponse:
    """Every account, searchable by username, name or e-mail, 50 to a page."""
    search = forms.SearchForm(request.GET)
    query = search.cleaned_data["q"].strip() if search.is_valid() else ""
    page = selectors.accounts_page(query, request.GET.get("page"))
    rows = [{"account": user, "roles": selectors.role_names(user)} for user in page.object_list]
    return render(
        request,
        "administration/accounts.html",
        {"search": search, "query": query, "page": page, "rows": rows},
        status=200 if search.is_valid() else 400,
    )


@admin_page
@require_http_methods(["GET", "POST"])
def account_create(request: HttpRequest) -> HttpResponse:
    """Create a local account with its roles."""
    form = forms.UserCreateForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = services.user_create(
                username=data["username"],
                email=data["email"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                role_names=data["roles"],
                password=data["password"],
                actor=request.user,
                context=_context(request),
            )
        except AdministrationError as exc:
            error = str(exc)
        else:
            messages.success(request, f"Account {user.username} created.")
            return redirect("administration-account", pk=user.pk)
    invalid = request.method == "POST"
    return render(
        request,
        "administration/account_new.html",
        {"form": form, "error": error},
        status=400 if invalid else 200,
    )


@admin_page
@require_GET
def account_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One account: state, roles, sessions, API tokens and the clinicians linked to it."""
    return _account_page(request, get_object_or_404(User, pk=pk))


def _apply(request: HttpRequest, user: User, action: Callable[[], Any], done: str) -> HttpResponse:
    """Run one service call; back to the account with a message, or the account page with the error."""
    try:
        action()
    except AdministrationError as exc:
        return _account_page(request, user, error=str(exc))
    messages.success(request, done)
    return redirect("administration-account", pk=user.pk)


@admin_page
@require_POST
def account_roles(request: HttpRequest, pk: int) -> HttpResponse:
    """Replace an account's roles."""
    user = get_object_or_404(User, pk=pk)
    form = forms.RolesForm(request.POST)
    if not form.is_valid():
        return _account_page(request, user, error="Choose roles from the list.")
    return _apply(
        request,
        user,
        lambda: services.user_set_roles(
            user=user, role_names=form.cleaned_data["roles"], actor=request.user, context=_context(request)
        ),
        "Roles saved.",
    )


@admin_page
@require_POST
def account_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    """Switch an account off; its sessions end at once."""
    user = get_object_or_404(User, pk=pk)
    form = forms.DeactivateForm(request.POST)
    if not form.is_valid():
        return _account_page(request, user, error="Give a reason (at most 500 characters).")
    return _apply(
        request,
        user,
        lambda: services.user_deactivate(
            user=user, reason=form.cleaned_data["reason"], actor=request.user, context=_context(request)
        ),
        "Account deactivated; its sessions have ended.",
    )


@admin_page
@require_POST
def account_reactivate(request: HttpRequest, pk: int) -> HttpResponse:
    """Switch a deactivated account on again."""
    user = get_object_or_404(User, pk=pk)
    return _apply(
        request,
        user,
        lambda: services.user_reactivate(user=user, actor=request.user, context=_context(request)),
        "Account reactivated.",
    )


@admin_page
@require_POST
def session_end(request: HttpRequest, pk: int, session_id: str) -> HttpResponse:
    """End one of an account's sessions."""
    user = get_object_or_404(User, pk=pk)
    return _apply(
        request,
        user,
        lambda: services.session_end(
            user=user, session_id=session_id, actor=request.user, context=_context(request)
        ),
        "Session ended.",
    )


@admin_page
@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    """Every signed-in session, with its account."""
    return render(request, "administration/sessions.html", {"rows": selectors.all_sessions()})


def _shown_once(request: HttpRequest, user: User, issue: Callable[[], tuple[ApiToken, str]]) -> HttpResponse:
    """Issue a token and show its secret on this answer only (never stored, never redirected to)."""
    try:
        token, secret = issue()
    except AdministrationError as exc:
        return _account_page(request, user, error=str(exc))
    return _account_page(request, user, secret=secret, issued=token)


@admin_page
@require_POST
def token_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Issue an API token for an integration account."""
    user = get_object_or_404(User, pk=pk)
    form = forms.TokenForm(request.POST)
    if not form.is_valid():
        return _account_page(request, user, error="Name the token (at most 100 characters).")
    return _shown_once(
        request,
        user,
        lambda: services.api_token_create(
            user=user, name=form.cleaned_data["name"], actor=request.user, context=_context(request)
        ),
    )


@admin_page
@require_POST
def token_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    """Replace a token by a new secret (the old one stops working now)."""
    token = get_object_or_404(ApiToken.objects.select_related("user"), pk=pk)
    return _shown_once(
        request,
        token.user,
        lambda: services.api_token_rotate(token=token, actor=request.user, context=_context(request)),
    )


@admin_page
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke a token."""
    token = get_object_or_404(ApiToken.objects.select_related("user"), pk=pk)
    return _apply(
        request,
        token.user,
        lambda: services.api_token_revoke(token=token, actor=request.user, context=_context(request)),
        "Token revoked.",
    )
