"""``manage.py reinfer --model NAME:VERSION|ID [filters] [--wait]``: start a re-inference run."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import log as audit
from inference import selectors
from inference.models import ReinferenceRun, RunStatus
from inference.reinference import reaper, runs
from inference.reinference.cohort import CohortFilter
from portal.core.dates import date_option
from portal.core.errors import RecordError
from portal.records.models import AIOutputKind


class Command(BaseCommand):
    """Re-run a model version over the signed studies the filter selects; optionally wait for the end."""

    help = (
        "Create a re-inference run: the model version re-generates the stored AI outputs of every study "
        "matching the filter that has an original AI output of --kind and a final signed report, and each "
        "new text is compared with the original output and with the signed report. Chunks run on the "
        "Celery workers. With --wait, show progress until the run ends (the lease reaper runs on demand "
        "meanwhile) and print the summary as JSON."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", required=True, help="NAME:VERSION or the model version id")
        parser.add_argument("--kind", default=AIOutputKind.REPORT_DRAFT, choices=AIOutputKind.values)
        parser.add_argument("--specialty", default="")
        parser.add_argument("--modality", default="")
        parser.add_argument(
            "--from", dest="date_from", type=date_option("--from"), help="first study date, YYYY-MM-DD"
        )
        parser.add_argument(
            "--to", dest="date_to", type=date_option("--to"), help="last study date, YYYY-MM-DD"
        )
        parser.add_argument("--radiologist", default="", help="user name of the signing radiologist")
        parser.add_argument("--sample", type=int, help="re-run a random sample of N studies")
        parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
        parser.add_argument(
            "--chunk-size", type=int, help="studies per chunk (default REINFERENCE_CHUNK_SIZE)"
        )
        parser.add_argument("--wait", action="store_true", help="wait for the run to end; print its summary")
        parser.add_argument("--poll", type=float, default=2.0, help="seconds between progress lines (--wait)")
        parser.add_argument("--timeout", type=float, help="give up waiting after this many seconds (--wait)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            cohort = CohortFilter(
                specialty=options["specialty"],
                modality=options["modality"],
                date_from=options["date_from"],
                date_to=options["date_to"],
                radiologist=options["radiologist"],
                sample=options["sample"],
                seed=options["seed"],
            )
            run = runs.reinference_run_create(
                model_version=options["model"],
                kind=options["kind"],
                cohort=cohort,
                chunk_size=options["chunk_size"],
                actor=None,
                context=audit.AuditContext(channel="manage.py reinfer"),
            )
        except RecordError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"run {run.pk}: {run.total} studies in {run.chunks.count()} chunks, "
            f"model {run.model_version.name}:{run.model_version.version}, kind {run.kind}"
        )
        if options["wait"]:
            self._wait(run, poll=max(0.1, options["poll"]), timeout=options["timeout"])

    def _wait(self, run: ReinferenceRun, *, poll: float, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run.refresh_from_db()
            progress = selectors.run_progress(run)
            eta = "" if progress["eta_seconds"] is None else f", ETA {progress['eta_seconds']:.0f} s"
            rate = "" if progress["rate_per_second"] is None else f", {progress['rate_per_second']} studies/s"
            notice = f". {progress['liveness']['notice']}" if progress["liveness"]["notice"] else ""
            self.stdout.write(
                f"{run.status}: {run.done} done, {run.failed} failed of {run.total}{rate}{eta}{notice}"
            )
            if not run.is_active:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise CommandError(
                    f"run {run.pk} still {run.status} after {timeout} s; it goes on in the workers"
                )
            # A worker that died holding a chunk is noticed here too, not only by Celery beat.
            reaper.reinference_reap()
            time.sleep(poll)
        self.stdout.write(json.dumps(selectors.run_summary(run), indent=2, sort_keys=True))
        if run.status == RunStatus.FAILED:
            raise CommandError(f"run {run.pk} failed: {run.error}")
