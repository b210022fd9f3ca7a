"""App config for accounts."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Roles are Django groups, created by this app's first migration."""

    name = "portal.accounts"
    label = "accounts"
