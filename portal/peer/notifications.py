"""Notifications: the committee's feedback and new review assignments reach their recipient, in the
portal (an inbox with an unread count) and by e-mail.

Creating a notification is idempotent (one per feedback, one per assignment: unique keys) and never
fails the review write that caused it: the receivers run it in a savepoint and log a failure, and the
periodic sweep creates whatever is missing. E-mail goes out from a Celery task per recipient, after the
commit; a message that could not be enqueued or sent is picked up by the same sweep.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import DatabaseError, transaction
from django.db.models import F, QuerySet
from django.urls import reverse
from django.utils import timezone

from audit import log as audit
from portal.core.enqueue import enqueue_on_commit
from portal.core.errors import RecordNotFound
from portal.peer.models import EmailState, Notification, NotificationKind
from portal.review.models import Assignment, Feedback

logger = logging.getLogger(__name__)

EMAIL_TASK = "portal.peer.tasks.send_notification_emails"
#: The sweep looks this far back for feedback and assignments without a notification.
SWEEP_WINDOW = dt.timedelta(days=7)
#: An e-mail still pending this long after its notification was created is enqueued again by the sweep.
EMAIL_GRACE = dt.timedelta(minutes=2)
SWEEP_BATCH = 1000
EMAIL_BATCH = 200
SUBJECT = "Concordance: new peer-review notification"

User = get_user_model()


# --- Creation -----------------------------------------------------------------------------------------


def _create(rows: list[Notification]) -> None:
    """Insert the rows that do not exist yet, then enqueue their recipients' e-mail after the commit."""
    if not rows:
        return
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    enqueue_on_commit(EMAIL_TASK, sorted({r.recipient_id for r in rows}), catch_up="the notification sweep")


def notify_feedback(feedbacks: Iterable[Feedback]) -> None:
    """Tell each radiologist that the committee's feedback on their case arrived (idempotent)."""
    _create(
        [
            Notification(recipient_id=f.radiologist_id, kind=NotificationKind.FEEDBACK, feedback_id=f.pk)
            for f in feedbacks
        ]
    )


def notify_assignments(assignments: Iterable[Assignment]) -> None:
    """Tell each reviewer that a case was assigned to them (idempotent; not for a self-assignment)."""
    _create(
        [
            Notification(recipient_id=a.reviewer_id, kind=NotificationKind.ASSIGNMENT, assignment_id=a.pk)
            for a in assignments
            if a.reviewer_id != a.assigned_by_id
        ]
    )


def notify_safely(create: Callable[[list], None], items: list) -> None:
    """Run ``create(items)`` in a savepoint; a database error is logged and left to the sweep.

    Called from signal receivers inside review's transaction: the review write must not fail because
    its notification could not be written.
    """
    try:
        with transaction.atomic():
            create(items)
    except DatabaseError:
        logger.exception("notification for %d item(s) not created; the sweep will retry", len(items))


# --- E-mail -------------------------------------------------------------------------------------------


def inbox_url() -> str:
    """The absolute address of the inbox, for e-mails (CONCORDANCE_BASE_URL + the inbox's path)."""
    return settings.CONCORDANCE_BASE_URL.rstrip("/") + reverse("peer-inbox")


def _email_body(notifications: list[Notification]) -> str:
    """What the e-mail says: how many of each kind, and the link. No case, patient or report detail."""
    counts = {kind: 0 for kind in NotificationKind}
    for n in notifications:
        counts[NotificationKind(n.kind)] += 1
    lines = ["You have new notifications in Concordance:", ""]
    if counts[NotificationKind.FEEDBACK]:
        lines.append(f"- feedback from the QA committee on {counts[NotificationKind.FEEDBACK]} of your cases")
    if counts[NotificationKind.ASSIGNMENT]:
        lines.append(f"- {counts[NotificationKind.ASSIGNMENT]} case(s) assigned to you for review")
    lines += ["", f"Open your inbox: {inbox_url()}", "", "This message contains no patient information."]
    return "\n".join(lines)


def notifications_email(recipient_id: int) -> int:
    """Send one e-mail for the recipient's pending notifications; returns how many it covered.

    Idempotent: only notifications still pending are taken, under a row lock, and marked in the same
    transaction (a crash after sending and before the commit sends them again: at least once).
    Notifications already read in the portal, or of a recipient without an address, are marked skipped.
    """
    with transaction.atomic():
        pending = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(recipient_id=recipient_id, email_state=EmailState.PENDING)
            .order_by("pk")[:EMAIL_BATCH]
        )
        if not pending:
            return 0
        recipient = User.objects.filter(pk=recipient_id, is_active=True).first()
        unread = [n for n in pending if n.read_at is None]
        address = (getattr(recipient, "email", "") or "").strip()
        now = timezone.now()
        if unread and address:
            send_mail(SUBJECT, _email_body(unread), settings.DEFAULT_FROM_EMAIL, [address])
            Notification.objects.filter(pk__in=[n.pk for n in unread]).update(
                email_state=EmailState.SENT, emailed_at=now
            )
        skipped = [n.pk for n in pending if n not in unread or not address]
        if skipped:
            Notification.objects.filter(pk__in=skipped).update(email_state=EmailState.SKIPPED)
    return len(unread) if address else 0


# --- Sweep --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SweepOutcome:
    """What one sweep did: notifications created and recipients whose e-mail was enqueued again."""

    created: int
    recipients: int


def notifications_sweep() -> SweepOutcome:
    """Create missing notifications of recent feedback and assignments; re-enqueue overdue e-mails."""
    now = timezone.now()
    since = now - SWEEP_WINDOW
    feedback = list(
        Feedback.objects.filter(created_at__gte=since, notification__isnull=True).order_by("pk")[:SWEEP_BATCH]
    )
    assignments = list(
        Assignment.objects.filter(created_at__gte=since, notification__isnull=True)
        .exclude(assigned_by_id=F("reviewer_id"))
        .order_by("pk")[:SWEEP_BATCH]
    )
    with transaction.atomic():
        # Rows inserted meanwhile by a receiver are skipped (ignore_conflicts); the count may then
        # overstate by those, which only the log line of the task reads.
        notify_feedback(feedback)
        notify_assignments(assignments)
        created = len(feedback) + len(assignments)
        overdue = sorted(
            set(
                Notification.objects.filter(
                    email_state=EmailState.PENDING, created_at__lt=now - EMAIL_GRACE
                ).values_list("recipient_id", flat=True)[:SWEEP_BATCH]
            )
        )
        enqueue_on_commit(EMAIL_TASK, overdue, catch_up="the next sweep")
    return SweepOutcome(created=created, recipients=len(overdue))


# --- Inbox --------------------------------------------------------------------------------------------


def inbox_of(user: AbstractBaseUser) -> QuerySet[Notification]:
    """The user's notifications, newest first, with what the inbox shows of their sources."""
    return (
        Notification.objects.filter(recipient_id=user.pk)
        .select_related("feedback__comparison", "assignment__comparison")
        .order_by("-created_at", "-pk")
    )


def unread_count(user: AbstractBaseUser) -> int:
    """How many of the user's notifications are unread (the number in the navigation)."""
    return Notification.objects.filter(recipient_id=user.pk, read_at__isnull=True).count()


def target_url(notification: Notification) -> str:
    """Where opening a notification leads: the radiologist's feedback item, or the assigned case."""
    if notification.kind == NotificationKind.FEEDBACK:
        return f"{reverse('review-feedback')}#feedback-{notification.feedback_id}"
    return reverse("review-case", args=[notification.assignment.comparison_id])


def notification_mark_read(
    *, user: AbstractBaseUser, notification_id: int, context: audit.AuditContext
) -> Notification:
    """Mark one of the user's notifications read (idempotent); someone else's is "not found"."""
    with transaction.atomic():
        notification = (
            Notification.objects.select_for_update(of=("self",))
            .select_related("assignment")
            .filter(pk=notification_id, recipient_id=user.pk)
            .first()
        )
        if notification is None:
            raise RecordNotFound("No such notification.")
        if notification.read_at is None:
            notification.read_at = timezone.now()
            notification.save(update_fields=["read_at"])
            audit.record(
                "notification.read",
                actor=user,
                context=context,
                object_type="notification",
                object_id=notification.pk,
                details={"kind": notification.kind},
            )
    return notification


def notifications_mark_all_read(*, user: AbstractBaseUser, context: audit.AuditContext) -> int:
    """Mark every unread notification of the user read; returns how many (audited once, with the count)."""
    with transaction.atomic():
        count = Notification.objects.filter(recipient_id=user.pk, read_at__isnull=True).update(
            read_at=timezone.now()
        )
        if count:
            audit.record(
                "notification.read_all",
                actor=user,
                context=context,
                object_type="notification",
                details={"count": count},
            )
    return count
