"""Notifications: feedback and assignments reach their recipient in the portal and by e-mail, without
PHI in the mail, without ever failing the review write, and exactly once."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import DatabaseError
from django.utils import timezone

from audit.log import SYSTEM
from portal.peer import notifications, tasks
from portal.peer.models import EmailState, Notification, NotificationKind
from portal.review import services
from portal.review.models import Assignment, Feedback, Review

pytestmark = pytest.mark.django_db
TASK = "portal.peer.tasks.send_notification_emails"


@pytest.fixture
def addressed(personas):
    """alice and carol have e-mail addresses (bob has none)."""
    for name in ("alice", "carol"):
        personas[name].email = f"{name}@hospital.example"
        personas[name].save(update_fields=["email"])
    return personas


def test_feedback_notifies_the_radiologist_in_the_portal_and_by_mail(
    addressed, make_case, adjudicate, broker, mailoutbox, django_capture_on_commit_callbacks
):
    case = make_case(addressed["alice"])
    with django_capture_on_commit_callbacks(execute=True):
        adjudicate(case, addressed["carol"], feedback="Please look at the apices.")

    notification = Notification.objects.get()
    assert notification.recipient == addressed["alice"] and notification.kind == NotificationKind.FEEDBACK
    assert broker.sent == [(TASK, [addressed["alice"].pk])]
    broker.run_all()
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["alice@hospital.example"]
    assert mail.subject == notifications.SUBJECT
    assert "http://localhost:8000/peer/inbox/" in mail.body and "feedback" in mail.body
    study = case.study
    for phi in (study.patient.mrn, study.accession_number, "Testperson", "apices", "pneumothorax"):
        assert phi not in mail.subject and phi not in mail.body
    notification.refresh_from_db()
    assert notification.email_state == EmailState.SENT and notification.emailed_at is not None


def test_a_review_without_feedback_notifies_nobody(personas, make_case, adjudicate):
    adjudicate(make_case(personas["alice"]), personas["carol"])

    assert not Notification.objects.exists()


def test_acknowledging_feedback_does_not_notify_again(personas, make_case, adjudicate):
    adjudicate(make_case(personas["alice"]), personas["carol"], feedback="Check this.")
    services.feedback_acknowledge(
        feedback_id=Feedback.objects.get().pk, user=personas["alice"], context=SYSTEM
    )

    assert Notification.objects.count() == 1


def test_assigning_cases_in_bulk_notifies_the_reviewer_once_per_case(
    addressed, make_case, broker, mailoutbox, django_capture_on_commit_callbacks
):
    cases = [make_case(addressed["alice"]) for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        services.assignments_create(
            comparison_ids=[c.pk for c in cases],
            reviewer=addressed["carol"],
            actor=addressed["dana"],
            context=SYSTEM,
        )

    assert (
        Notification.objects.filter(recipient=addressed["carol"], kind=NotificationKind.ASSIGNMENT).count()
        == 3
    )
    assert broker.sent == [(TASK, [addressed["carol"].pk])]  # one e-mail task per recipient, not per case
    broker.run_all()
    assert len(mailoutbox) == 1 and "3 case(s) assigned to you" in mailoutbox[0].body


def test_a_chair_assigning_herself_is_not_notified(personas, make_case):
    case = make_case(personas["alice"])
    services.assignments_create(
        comparison_ids=[case.pk], reviewer=personas["dana"], actor=personas["dana"], context=SYSTEM
    )

    assert Assignment.objects.count() == 1 and not Notification.objects.exists()


def test_an_assignment_saved_one_at_a_time_is_notified_too(personas, make_case):
    case = make_case(personas["alice"])
    Assignment.objects.create(comparison=case, reviewer=personas["carol"], assigned_by=personas["dana"])

    assert Notification.objects.get().recipient == personas["carol"]


def test_a_failing_notification_never_fails_the_review_and_the_sweep_catches_up(
    personas, make_case, adjudicate, monkeypatch
):
    case = make_case(personas["alice"])

    def broken(*args, **kwargs):
        raise DatabaseError("notification table unavailable")

    with monkeypatch.context() as patch:
        patch.setattr(Notification.objects, "bulk_create", broken)
        review = adjudicate(case, personas["carol"], feedback="Check the apices.")

    assert Review.objects.filter(pk=review.pk).exists() and Feedback.objects.count() == 1
    assert not Notification.objects.exists()
    assert notifications.notifications_sweep().created == 1
    assert Notification.objects.get().feedback == Feedback.objects.get()
    assert notifications.notifications_sweep().created == 0  # idempotent


def test_a_broker_outage_leaves_the_mail_to_the_sweep(
    addressed, make_case, adjudicate, broker, mailoutbox, django_capture_on_commit_callbacks
):
    broker.down = True
    with django_capture_on_commit_callbacks(execute=True):
        adjudicate(make_case(addressed["alice"]), addressed["carol"], feedback="Check the apices.")
    assert Feedback.objects.count() == 1 and broker.sent == []

    broker.down = False
    from portal.core.enqueue import broker_breaker

    broker_breaker().reset()
    Notification.objects.update(created_at=timezone.now() - dt.timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        outcome = notifications.notifications_sweep()
    assert outcome.recipients == 1
    broker.run_all()
    assert len(mailoutbox) == 1


def test_sending_twice_mails_once(addressed, make_case, adjudicate, mailoutbox):
    adjudicate(make_case(addressed["alice"]), addressed["carol"], feedback="Check the apices.")

    assert tasks.send_notification_emails(addressed["alice"].pk) == 1
    assert tasks.send_notification_emails(addressed["alice"].pk) == 0
    assert len(mailoutbox) == 1


def test_no_address_or_already_read_means_no_mail(personas, addressed, make_case, adjudicate, mailoutbox):
    adjudicate(make_case(personas["bob"]), personas["carol"], feedback="For bob, who has no address.")
    adjudicate(make_case(addressed["alice"]), addressed["carol"], feedback="Read in the portal first.")
    Notification.objects.filter(recipient=addressed["alice"]).update(read_at=timezone.now())

    notifications.notifications_email(personas["bob"].pk)
    notifications.notifications_email(addressed["alice"].pk)

    assert mailoutbox == []
    assert set(Notification.objects.values_list("email_state", flat=True)) == {EmailState.SKIPPED}


def test_the_sweep_does_not_resurrect_old_history(personas, make_case, adjudicate):
    adjudicate(make_case(personas["alice"]), personas["carol"], feedback="Long ago.")
    Notification.objects.all().delete()
    Feedback.objects.update(created_at=timezone.now() - notifications.SWEEP_WINDOW - dt.timedelta(days=1))

    assert notifications.notifications_sweep().created == 0


def test_a_notification_has_exactly_one_source_matching_its_kind(personas, make_case, adjudicate):
    from django.db import IntegrityError, transaction

    adjudicate(make_case(personas["alice"]), personas["carol"], feedback="x")
    feedback = Feedback.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(
            recipient=personas["alice"], kind=NotificationKind.ASSIGNMENT, feedback=feedback
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(
            recipient=personas["alice"], kind=NotificationKind.FEEDBACK, feedback=feedback
        )


def test_the_email_task_is_late_acknowledged_and_retried_on_mail_errors():
    task = tasks.send_notification_emails
    assert task.acks_late is True
    assert OSError in task.autoretry_for
