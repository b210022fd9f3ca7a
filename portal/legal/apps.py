"""App config for legal holds and the retention purge they restrain."""

from django.apps import AppConfig


class LegalConfig(AppConfig):
    """Legal holds on patients, studies or date ranges, and the purge that must respect them.

    Kept apart from ``audit`` because holds reference clinical records, and ``audit`` imports no
    domain app.
    """

    name = "portal.legal"
    label = "legal"
