"""The retention purge (portal/legal, which cannot know peer learning) is never blocked by it: a purged
case takes its notifications and routing record with it, and a teaching copy keeps only its
de-identified texts."""

from __future__ import annotations

import pytest

from audit.log import SYSTEM
from portal.legal.services import study_purge
from portal.peer import routing, teaching
from portal.peer.models import Notification, RoutedCase, TeachingCase

pytestmark = pytest.mark.django_db


def test_purging_a_study_takes_its_notifications_and_routing_and_keeps_the_teaching_copy(
    personas, make_case, adjudicate, page_for
):
    routed = make_case(personas["alice"])
    routing.routing_rule_save(
        reviewer=personas["carol"],
        specialty="chest",
        max_open=5,
        active=True,
        actor=personas["dana"],
        context=SYSTEM,
    )
    routing.routing_run(actor=personas["dana"], context=SYSTEM)
    adjudicate(routed, personas["carol"], feedback="Please check the apex.")
    teaching_set = teaching.teaching_set_create(
        title="Set", conference_date=None, description="", actor=personas["dana"], context=SYSTEM
    )
    copy = teaching.teaching_case_add(
        teaching_set=teaching_set, comparison_id=routed.pk, actor=personas["dana"], context=SYSTEM
    )
    assert Notification.objects.count() == 2 and RoutedCase.objects.count() == 1

    outcome = study_purge(study=routed.study, dry_run=False)

    assert not outcome.kept
    assert not Notification.objects.exists() and not RoutedCase.objects.exists()
    copy.refresh_from_db()
    assert copy.comparison_id is None and "Large right pneumothorax" in copy.signed_report
    html = page_for("dana").get(f"/peer/teaching/{teaching_set.pk}/").content.decode()
    assert "source case purged" in html
    teaching.teaching_case_edit(
        case=copy, ai_draft="Draft, MRN 1234567.", signed_report="Signed.", committee_comment="",
        actor=personas["dana"], context=SYSTEM,
    )  # fmt: skip
    assert TeachingCase.objects.get().ai_draft == "Draft, MRN [ID]"
