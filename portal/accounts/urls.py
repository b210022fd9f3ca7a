"""Sign-in URLs (mounted at /accounts/): password, single sign-on, second factor, session keep-alive."""

from django.contrib.auth import views as auth_views
from django.urls import path
from mozilla_django_oidc import views as oidc_views

from portal.accounts import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # OpenID Connect (answers 404 unless a provider is configured).
    path(
        "oidc/authenticate/",
        views.when_oidc(oidc_views.OIDCAuthenticationRequestView),
        name="oidc_authentication_init",
    ),
    path(
        "oidc/callback/",
        views.when_oidc(oidc_views.OIDCAuthenticationCallbackView),
        name="oidc_authentication_callback",
    ),
    path("oidc/logout/", views.when_oidc(oidc_views.OIDCLogoutView), name="oidc_logout"),
    path("otp/setup/", views.otp_setup, name="otp-setup"),
    path("otp/verify/", views.otp_verify, name="otp-verify"),
    path("session/keepalive", views.session_keepalive, name="session-keepalive"),
    path("session/status", views.session_status, name="session-status"),
]
