"""Cases for the review flows, seeded the way production receives them: through the REST API.

The RIS account posts each study, the model server's AI draft and the radiologist's signed report; the
real worker (``celery_worker_process``) then runs the discrepancy engine and stores the comparison, so
the QA queue shows what the engine really found, at its real character offsets.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

from django.utils import timezone

from tests.factories import ai_output_json, signed_report_json, study_json


@dataclasses.dataclass(frozen=True)
class SeedCase:
    """One study of the flow: who signs it, how it is classified, the AI draft and the signed text."""

    key: str
    radiologist: str
    specialty: str
    modality: str
    draft: str
    signed: str


CASES: tuple[SeedCase, ...] = (
    # A laterality swap and a missed pneumothorax: significant, the case the committee scores.
    SeedCase(
        "swap",
        "alice",
        "chest",
        "CR",
        "Small left pleural effusion. No pneumothorax.",
        "Small right pleural effusion. Right apical pneumothorax.",
    ),
    # The draft misses a consolidation the radiologist reported.
    SeedCase(
        "missed",
        "alice",
        "chest",
        "CR",
        "The heart is normal in size.",
        "The heart is normal in size. Right lower lobe consolidation.",
    ),
    # Another radiologist's CT (lung bases seen on an abdominal CT): a laterality swap only.
    SeedCase(
        "other",
        "bob",
        "abdominal",
        "CT",
        "Small left pleural effusion.",
        "Small right pleural effusion.",
    ),
    # Draft and report agree.
    SeedCase(
        "concordant",
        "bob",
        "chest",
        "CR",
        "Small left pleural effusion.",
        "Small left pleural effusion.",
    ),
)


def _ok(response, what: str) -> None:
    if response.status_code >= 300:
        detail = getattr(response, "data", response.content)
        raise AssertionError(f"{what}: {response.status_code} {detail!r}")


def seed_cases(ris, *, cases: tuple[SeedCase, ...] = CASES, timeout: float = 60.0) -> dict[str, object]:
    """Post every case through the API as ``ris`` and wait for the worker's comparisons.

    Studies are dated a week apart in the last month, so that the dashboard's default period shows
    them as a weekly trend. Returns
    the stored comparisons by case key; the dashboard's daily figures are refreshed afterwards (in
    production a beat task does it).
    """
    from portal.review import services
    from portal.review.models import Comparison

    now = timezone.now().replace(microsecond=0)
    accessions = {}
    for n, case in enumerate(cases):
        accession = f"ACC-E2E-{case.key.upper()}"
        acquired = now - dt.timedelta(days=7 * n + 1, hours=2)  # one a week: the trend has points
        accessions[case.key] = accession
        study = study_json(
            accession,
            mrn=f"MRN-E2E-{n}",
            study_instance_uid=f"1.2.826.0.1.3680043.10.4242.{n + 1}",
            specialty=case.specialty,
            modality=case.modality,
            study_datetime=acquired.isoformat(),
        )
        _ok(ris.post("/api/v1/studies", study, format="json"), f"study {case.key}")
        draft = ai_output_json(
            accession,
            text=f"FINDINGS:\n{case.draft}\n\nIMPRESSION:\n{case.draft}",
            generated_at=(acquired + dt.timedelta(minutes=5)).isoformat(),
        )
        _ok(ris.post("/api/v1/ai-outputs", draft, format="json"), f"draft {case.key}")
        report = signed_report_json(
            accession,
            radiologist=case.radiologist,
            sections={"indication": "Cough.", "findings": case.signed, "impression": case.signed},
            signed_at=(acquired + dt.timedelta(hours=1)).isoformat(),
        )
        _ok(ris.post("/api/v1/signed-reports", report, format="json"), f"report {case.key}")

    deadline = time.monotonic() + timeout
    while Comparison.objects.filter(study__accession_number__in=accessions.values()).count() < len(cases):
        if time.monotonic() > deadline:
            raise AssertionError("the worker did not compare every seeded study in time")
        time.sleep(0.3)
    services.daily_stats_refresh()
    return {key: Comparison.objects.get(study__accession_number=acc) for key, acc in accessions.items()}
