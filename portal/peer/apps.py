"""App config for peer learning: notifications, teaching sets and rule-based case routing."""

from django.apps import AppConfig


class PeerConfig(AppConfig):
    """Answers review's writes with notifications (receivers connected here); review never imports peer."""

    name = "portal.peer"
    label = "peer"

    def ready(self) -> None:
        from portal.peer import receivers

        receivers.connect()
