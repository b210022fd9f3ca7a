"""App config for the audit trail."""

from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Registers the audit tables as immutable."""

    name = "audit"

    def ready(self) -> None:
        from audit import immutability, signals  # noqa: F401 - connects the authentication receivers

        immutability.register("audit_auditevent", "audit_auditnode", "audit_checkpoint")
