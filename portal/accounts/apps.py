"""App config for accounts."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Roles are Django groups, created by this app's first migration."""

    name = "portal.accounts"
    label = "accounts"

    def ready(self) -> None:
        """Connect the lockout audit receiver, the second-factor login hook and its system check."""
        from portal.accounts import second_factor, signals  # noqa: F401 - imported for their receivers
