"""Signals the review app sends for the rooms above it (they connect; review never imports them)."""

from django.dispatch import Signal

#: Sent inside the assigning transaction with ``assignments``, the Assignment rows just bulk-created
#: (``bulk_create`` sends no ``post_save``). Peer learning turns them into notifications.
assignments_created = Signal()
