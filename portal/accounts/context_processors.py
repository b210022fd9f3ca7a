"""What every page's shell (templates/base.html) needs: the navigation and the idle timeout."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from portal.accounts import navigation


def shell(request: HttpRequest) -> dict[str, object]:
    """``nav_links`` for the signed-in user, ``idle_timeout_s`` for the logoff countdown, the SSO button."""
    user = getattr(request, "user", None)
    signed_in = bool(user is not None and user.is_authenticated)
    return {
        "nav_links": navigation.links_for(user, request.path) if signed_in else [],
        "idle_timeout_s": settings.CONCORDANCE_IDLE_TIMEOUT_S,
        # The single sign-on button of the login page, when an OpenID Connect provider is configured.
        "oidc_login_label": settings.CONCORDANCE_OIDC_LABEL
        if getattr(settings, "OIDC_RP_CLIENT_ID", "")
        else "",
    }
