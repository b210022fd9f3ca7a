"""App config for administration: the admin role's pages for accounts, roles, sessions and API tokens."""

from django.apps import AppConfig


class AdministrationConfig(AppConfig):
    """No models of its own: it works on accounts (portal.accounts) and the clinician directory."""

    name = "portal.administration"
    label = "administration"
