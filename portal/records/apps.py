"""App config for the clinical record."""

from django.apps import AppConfig


class RecordsConfig(AppConfig):
    """Registers the evidence tables as immutable."""

    name = "portal.records"
    label = "records"

    def ready(self) -> None:
        from audit import immutability
        from portal.records.api import openapi  # noqa: F401 - registers the schema extensions

        immutability.register("records_aioutput", "records_signedreport")
