"""Answers of peer learning to review's writes: feedback and assignments become notifications.

Connected in :mod:`.apps`. Each receiver runs inside review's transaction, in a savepoint
(:func:`~portal.peer.notifications.notify_safely`): a failure is logged, never raised into the review
write, and the periodic sweep creates what is missing. E-mail is sent after the commit, by a task.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save

from portal.peer import notifications
from portal.review.models import Assignment, Feedback
from portal.review.signals import assignments_created


def feedback_saved(sender: Any, *, instance: Feedback, created: bool, raw: bool = False, **_: Any) -> None:
    """New feedback: tell the radiologist (acknowledging it later saves it again: nothing to say then)."""
    if created and not raw:
        notifications.notify_safely(notifications.notify_feedback, [instance])


def assignment_saved(
    sender: Any, *, instance: Assignment, created: bool, raw: bool = False, **_: Any
) -> None:
    """An assignment created one at a time (``save()``): tell the reviewer."""
    if created and not raw:
        notifications.notify_safely(notifications.notify_assignments, [instance])


def assignments_bulk_created(sender: Any, *, assignments: list[Assignment], **_: Any) -> None:
    """Assignments created in bulk (the queue's assign action, sampling campaigns, routing runs)."""
    notifications.notify_safely(notifications.notify_assignments, list(assignments))


def connect() -> None:
    """Connect the receivers (once: dispatch_uid)."""
    post_save.connect(feedback_saved, sender=Feedback, dispatch_uid="peer.feedback_saved")
    post_save.connect(assignment_saved, sender=Assignment, dispatch_uid="peer.assignment_saved")
    assignments_created.connect(assignments_bulk_created, dispatch_uid="peer.assignments_bulk_created")
