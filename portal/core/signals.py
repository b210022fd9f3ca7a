"""Signals by which a lower room asks a room above it for something it may not import.

Receivers answer with their return value (``Signal.send`` collects them); a room that is absent or
answers nothing leaves the sender to its own fallback.
"""

from __future__ import annotations

from django.dispatch import Signal

#: Sent by re-inference with ``pairs``, a set of (AI output id, signed report id). A receiver returns
#: ``{pair: (radpeer, significant_count, minor_count, [{"category", "significance"}, ...])}`` for the
#: pairs whose comparison is stored (the review app holds them); pairs it does not know are left out.
stored_comparisons_wanted = Signal()
