"""App config for the demo (management commands only: no models)."""

from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Registers ``seed_demo`` and ``run_demo``."""

    name = "portal.demo"
    label = "demo"
