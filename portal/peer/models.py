"""Peer learning: what reaches the radiologist (notifications), what the department learns from
(anonymised teaching sets) and how cases reach reviewers (routing rules and their runs).

Everything here sits on top of the review app: it reads review's cases, reviews, feedback and
assignments; review never imports this app.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from portal.records.models import Specialty
from portal.review.models import Assignment, Comparison, Feedback


class NotificationKind(models.TextChoices):
    """What a notification tells its recipient about."""

    FEEDBACK = "feedback", "Feedback on your case"
    ASSIGNMENT = "assignment", "Case assigned for review"


class EmailState(models.TextChoices):
    """Where the e-mail copy of a notification stands (the in-portal copy exists regardless)."""

    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    SKIPPED = "skipped", "Not sent (no address, or read in the portal first)"


class Notification(models.Model):
    """One thing a user should hear about: the committee's feedback on their case, or a case to review.

    Exactly one source (a Feedback or an Assignment), each at most once: the unique keys make creating
    it idempotent, so the post-save hook, the bulk-assignment signal and the catch-up sweep can all try.
    Holds no text of its own: the inbox describes it from the source, and the e-mail copy says only
    that something arrived, with a link into the portal (no PHI leaves by mail).
    """

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=NotificationKind.choices)
    # CASCADE: a notification is derived from its source; the retention purge (portal/legal, which
    # cannot know this app) deletes a study's feedback and assignments, and their notifications go too.
    feedback = models.OneToOneField(
        Feedback, on_delete=models.CASCADE, null=True, blank=True, related_name="notification"
    )
    assignment = models.OneToOneField(
        Assignment, on_delete=models.CASCADE, null=True, blank=True, related_name="notification"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    email_state = models.CharField(max_length=8, choices=EmailState.choices, default=EmailState.PENDING)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="feedback") & Q(feedback__isnull=False) & Q(assignment__isnull=True))
                | (Q(kind="assignment") & Q(assignment__isnull=False) & Q(feedback__isnull=True)),
                name="notification_one_source_matching_kind",
            ),
        ]
        indexes = [
            models.Index(fields=["recipient", "read_at"], name="notification_unread"),
            models.Index(fields=["recipient", "-created_at"], name="notification_inbox"),
            models.Index(fields=["email_state", "created_at"], name="notification_email_due"),
        ]

    def __str__(self) -> str:
        return f"Notification {self.pk} ({self.kind})"


class TeachingSet(models.Model):
    """A collection of adjudicated cases, anonymised, for a peer-learning conference.

    Built by the QA chair. Its cases are copies with identifiers removed at the time they were added,
    so what is shown or exported never reads the clinical record again.
    """

    title = models.CharField(max_length=200)
    conference_date = models.DateField(null=True, blank=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(title=""), name="teaching_set_title_not_empty")]

    def __str__(self) -> str:
        return f"TeachingSet {self.pk}"


class TeachingCase(models.Model):
    """One case of a teaching set: de-identified texts, the discrepancies and the committee's comment.

    ``comparison`` keeps the way back to the source for the chair (never exported); it is emptied when
    the retention purge deletes the source case (the de-identified copy stays). The texts are the
    de-identified snapshot, editable by the chair before the conference to catch what the automatic
    de-identification missed.
    """

    teaching_set = models.ForeignKey(TeachingSet, on_delete=models.CASCADE, related_name="cases")
    comparison = models.ForeignKey(Comparison, on_delete=models.SET_NULL, null=True, related_name="+")
    position = models.PositiveIntegerField()
    specialty = models.CharField(max_length=32, blank=True)
    modality = models.CharField(max_length=16, blank=True)
    radpeer = models.CharField(max_length=2, blank=True)
    ai_draft = models.TextField()
    signed_report = models.TextField()
    discrepancies = models.JSONField(default=list)
    committee_comment = models.TextField(blank=True)
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["teaching_set", "comparison"], name="teaching_case_once_per_set"),
            models.UniqueConstraint(
                fields=["teaching_set", "position"], name="teaching_case_position_unique"
            ),
        ]
        ordering = ["teaching_set", "position"]

    def __str__(self) -> str:
        return f"TeachingCase {self.pk}"


class RoutingRule(models.Model):
    """ "Give ``reviewer`` cases of ``specialty``, at most ``max_open`` unfinished ones at a time."

    The quota counts the reviewer's open (not completed) assignments of that specialty, however they
    were made, so a rule never piles work on a reviewer the chair already loaded by hand.
    """

    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    specialty = models.CharField(max_length=32, choices=Specialty.choices)
    max_open = models.PositiveIntegerField()
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reviewer", "specialty"], name="routing_rule_once_per_specialty"),
            models.CheckConstraint(
                condition=Q(max_open__gte=1) & Q(max_open__lte=1000), name="routing_rule_quota_range"
            ),
        ]

    def __str__(self) -> str:
        return f"RoutingRule {self.pk} ({self.specialty})"


class RoutingRun(models.Model):
    """One pass of "assign by rules" (from the page or the management command), with its outcome."""

    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    considered = models.PositiveIntegerField(default=0)
    routed = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"RoutingRun {self.pk}"


class RoutedCase(models.Model):
    """A case a routing run gave to a reviewer. Unique per case: two runs at once cannot both route it
    (the second one's insert fails and it retries on what is left). Goes with its case when the
    retention purge deletes it."""

    comparison = models.OneToOneField(Comparison, on_delete=models.CASCADE, related_name="routed")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    rule = models.ForeignKey(RoutingRule, on_delete=models.PROTECT, related_name="routed_cases")
    run = models.ForeignKey(RoutingRun, on_delete=models.PROTECT, related_name="routed_cases")

    def __str__(self) -> str:
        return f"RoutedCase {self.comparison_id} -> {self.reviewer_id}"
