"""Reads of the clinical record that grow beyond one query live here."""

from __future__ import annotations

import dataclasses
import datetime as dt

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Avg, Count, F, Max, Q, QuerySet

from portal.accounts import roles
from portal.records.models import (
    AIOutput,
    Clinician,
    InboundChannel,
    InboundMessage,
    InboundOutcome,
    SignedReport,
    Study,
)


def record_counts(user: AbstractBaseUser | AnonymousUser) -> dict[str, int]:
    """How many studies, AI outputs and signed reports ``user`` may see (three COUNT queries)."""
    studies = roles.visible_studies(user, Study.objects.all())
    return {
        "studies": studies.count(),
        "ai_outputs": AIOutput.objects.filter(study__in=studies).count(),
        "signed_reports": SignedReport.objects.filter(study__in=studies).count(),
    }


# --- the interface monitor and the clinician directory ------------------------------------------------
MONITOR_PAGE = 50


@dataclasses.dataclass(frozen=True)
class ChannelFigures:
    """One interface's traffic: messages per outcome and the time taken to answer them."""

    channel: str
    label: str
    total: int
    by_outcome: dict[str, int]
    mean_ms: float | None
    p95_ms: float | None
    max_ms: float | None


def _p95(messages: QuerySet, count: int) -> float | None:
    if not count:
        return None
    index = min(count - 1, int(count * 0.95))
    return messages.order_by("latency_ms").values_list("latency_ms", flat=True)[index]


def interface_figures(*, since: dt.datetime | None = None) -> list[ChannelFigures]:
    """Per-channel counts by outcome and answer latency (mean, p95, max), since ``since`` (else ever)."""
    messages = InboundMessage.objects.all()
    if since is not None:
        messages = messages.filter(received_at__gte=since)
    counts: dict[str, dict[str, int]] = {}
    for row in messages.values("channel", "outcome").annotate(n=Count("id")):
        counts.setdefault(row["channel"], {})[row["outcome"]] = row["n"]
    figures = []
    for channel, label in InboundChannel.choices:
        of_channel = messages.filter(channel=channel)
        by_outcome = counts.get(channel, {})
        total = sum(by_outcome.values())
        stats = of_channel.aggregate(mean=Avg("latency_ms"), top=Max("latency_ms"))
        figures.append(
            ChannelFigures(
                channel, label, total, by_outcome, stats["mean"], _p95(of_channel, total), stats["top"]
            )
        )
    return figures


def refused_messages(*, channel: str = "", before_id: int | None = None) -> list[InboundMessage]:
    """The latest rejected or failed messages (newest first, keyset by id), without their bodies."""
    messages = InboundMessage.objects.filter(
        outcome__in=(InboundOutcome.REJECTED, InboundOutcome.ERROR)
    ).defer("body")
    if channel:
        messages = messages.filter(channel=channel)
    if before_id is not None:
        messages = messages.filter(pk__lt=before_id)
    return list(messages.annotate(replay_count=Count("replays")).order_by("-pk")[:MONITOR_PAGE])


def clinician_directory(*, query: str = "", unlinked_only: bool = False) -> list[Clinician]:
    """Clinicians (unlinked first, then by name), filtered by name or identifier; with report counts."""
    clinicians = Clinician.objects.select_related("account").annotate(reports=Count("signed_reports"))
    if query:
        clinicians = clinicians.filter(
            Q(family_name__icontains=query) | Q(given_name__icontains=query) | Q(identifier__icontains=query)
        )
    if unlinked_only:
        clinicians = clinicians.filter(account__isnull=True)
    return list(
        clinicians.order_by(F("account").asc(nulls_first=True), "family_name", "given_name", "pk")[:200]
    )


def radiologist_accounts() -> list[AbstractBaseUser]:
    """Active radiologist accounts, by username: the accounts a clinician may be linked to."""
    return list(
        get_user_model()
        .objects.filter(is_active=True, groups__name=roles.Role.RADIOLOGIST)
        .order_by("username")
        .distinct()
    )
