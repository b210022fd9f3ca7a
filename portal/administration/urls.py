"""Administration pages (mounted at /administration/)."""

from django.urls import path

from portal.administration import views

urlpatterns = [
    path("users/", views.account_list, name="administration-users"),
    path("users/new", views.account_create, name="administration-account-new"),
    path("users/<int:pk>/", views.account_detail, name="administration-account"),
    path("users/<int:pk>/roles", views.account_roles, name="administration-account-roles"),
    path("users/<int:pk>/deactivate", views.account_deactivate, name="administration-account-deactivate"),
    path("users/<int:pk>/reactivate", views.account_reactivate, name="administration-account-reactivate"),
    path("users/<int:pk>/tokens", views.token_create, name="administration-token-create"),
    path(
        "users/<int:pk>/sessions/<str:session_id>/end",
        views.session_end,
        name="administration-session-end",
    ),
    path("sessions/", views.session_list, name="administration-sessions"),
    path("tokens/<int:pk>/rotate", views.token_rotate, name="administration-token-rotate"),
    path("tokens/<int:pk>/revoke", views.token_revoke, name="administration-token-revoke"),
]
