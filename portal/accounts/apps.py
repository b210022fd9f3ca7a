"""App config for accounts."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Roles are Django groups; this app creates them after migrate."""

    name = "portal.accounts"
    label = "accounts"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from portal.accounts.roles import ensure_role_groups

        post_migrate.connect(ensure_role_groups, sender=self)
