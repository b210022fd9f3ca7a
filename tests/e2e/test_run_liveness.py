"""The run page in a real browser says when work was lost with its worker and that no worker works.

No worker runs here on purpose: the run's chunks are in the state a SIGKILLed worker leaves (leased,
lease run out), and nothing may take them while the page is looked at.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from tests.e2e.browser import login_as, shoot
from tests.e2e.conftest import TIMEOUT_MS
from tests.model_fixtures import tiny_model_version  # noqa: F401 - a fixture
from tests.reinference.conftest import make_cohort  # noqa: F401 - a fixture

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def bare_page(browser, live_server) -> Iterator[object]:
    """A page on the live portal without the shared worker beside it."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


def test_the_run_page_says_chunks_were_lost_and_no_worker_takes_work(
    bare_page,
    users,
    make_cohort,  # noqa: F811 - the fixture imported above
    tiny_model_version,  # noqa: F811 - the fixtures imported above
):
    from django.utils import timezone

    from audit.log import SYSTEM
    from inference.models import ChunkStatus, ReinferenceChunk, ReinferenceRun
    from inference.reinference import runs
    from inference.reinference.cohort import CohortFilter

    make_cohort(6, tiny_model_version)
    run = runs.reinference_run_create(
        model_version=tiny_model_version, cohort=CohortFilter(), chunk_size=2, actor=None, context=SYSTEM
    )
    long_ago = timezone.now() - dt.timedelta(minutes=3)
    ReinferenceRun.objects.filter(pk=run.pk).update(
        created_at=long_ago, started_at=long_ago, status="running"
    )
    first_two = list(run.chunks.order_by("index").values_list("pk", flat=True)[:2])
    ReinferenceChunk.objects.filter(pk__in=first_two).update(
        status=ChunkStatus.RUNNING, lease_owner="host:4242:1", started_at=long_ago, attempts=1,
        lease_expires_at=timezone.now() - dt.timedelta(seconds=5),
    )  # fmt: skip

    login_as(bare_page, "dana")
    bare_page.goto(f"/reinference/{run.pk}/")
    notice = bare_page.locator("[data-testid=run-notice]").inner_text()

    assert notice.startswith("2 chunks lost with their worker at ")
    assert "retrying from" in notice and notice.endswith("no worker is taking work.")
    assert bare_page.locator("[data-testid=run-eta]").inner_text() == "no worker"
    shoot(bare_page, "reinference-run-lost-chunks")
