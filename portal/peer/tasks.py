"""Thin Celery tasks of peer learning: ids in, a service call, idempotent, retried on transient errors."""

from __future__ import annotations

import smtplib

from celery import shared_task
from django.db import OperationalError

from portal.peer import notifications


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError, smtplib.SMTPException, OSError),
    retry_backoff=True,
    max_retries=8,
)
def send_notification_emails(recipient_id: int) -> int:
    """E-mail the recipient about their pending notifications (one message; nothing when none pend)."""
    return notifications.notifications_email(recipient_id)


@shared_task(acks_late=True, ignore_result=True, autoretry_for=(OperationalError,), max_retries=3)
def sweep_notifications() -> int:
    """Create missing notifications and re-enqueue overdue e-mails; returns notifications created."""
    return notifications.notifications_sweep().created
