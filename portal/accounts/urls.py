"""Sign-in URLs (mounted at /accounts/): password, second factor, session keep-alive."""

from django.contrib.auth import views as auth_views
from django.urls import path

from portal.accounts import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("otp/setup/", views.otp_setup, name="otp-setup"),
    path("otp/verify/", views.otp_verify, name="otp-verify"),
    path("session/keepalive", views.session_keepalive, name="session-keepalive"),
    path("session/status", views.session_status, name="session-status"),
]
