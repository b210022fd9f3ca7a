"""Benchmark of the review pages (QA queue, case, dashboard) over a large PostgreSQL database.

Run from the repository root::

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/concordance_pages \\
        .venv/bin/python bench/pages.py [--studies 1000000] [--requests 60] [--reseed]

The database named in DATABASE_URL is created when missing, migrated, and seeded once with
``--studies`` studies (kept for later runs; ``--reseed`` drops and re-creates it). Each study gets a
patient, a clinical AI draft, a signed report by one of 40 radiologists, the comparison of the two
and its discrepancies; 1% of the cases have a committee review (a third of those with feedback). The
seed runs as a handful of ``INSERT ... SELECT FROM generate_series`` statements inside PostgreSQL
(millions of rows in minutes); the texts and discrepancies come from eight report pairs run through
the real engine, so every highlight points at real words. **Audit events are not written for the
seed** (the log would dominate the seed time and is benchmarked by bench/audit.py); the page views
measured below do write their audit events, as in production.

Measured through Django's test client in this process (no network, sessions in the database): each
page ``--requests`` times, median and p95 latency, and the SQL queries of one request.
"""

# ruff: noqa: S608 - the SQL below is built from integers this script generates, never from input

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("CONCORDANCE_TLS", "0")
os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")

PAIRS = [
    (
        "FINDINGS:\nSmall left pleural effusion. No pneumothorax.\n\n"
        "IMPRESSION:\nSmall left pleural effusion.",
        "FINDINGS:\nNo pleural effusion. No pneumothorax.\n\nIMPRESSION:\nNo acute abnormality.",
    ),
    (
        "FINDINGS:\nNo pneumothorax. Heart size normal.\n\nIMPRESSION:\nNo acute abnormality.",
        "FINDINGS:\nLarge right pneumothorax. Heart size normal.\n\nIMPRESSION:\nLarge right pneumothorax.",
    ),
    (
        "FINDINGS:\nRight lower lobe consolidation.\n\nIMPRESSION:\nRight lower lobe pneumonia.",
        "FINDINGS:\nLeft lower lobe consolidation.\n\nIMPRESSION:\nLeft lower lobe pneumonia.",
    ),
    (
        "FINDINGS:\nMild cardiomegaly. Lungs clear.\n\nIMPRESSION:\nMild cardiomegaly.",
        "FINDINGS:\nMild cardiomegaly. Lungs clear.\n\nIMPRESSION:\nMild cardiomegaly.",
    ),
    (
        "FINDINGS:\nSmall pleural effusion on the right.\n\nIMPRESSION:\nSmall right effusion.",
        "FINDINGS:\nLarge pleural effusion on the right.\n\nIMPRESSION:\nLarge right effusion.",
    ),
    (
        "FINDINGS:\nNo acute intracranial hemorrhage.\n\nIMPRESSION:\nNormal study.",
        "FINDINGS:\nNo acute intracranial hemorrhage.\n\nIMPRESSION:\nNormal study.",
    ),
    (
        "FINDINGS:\n8 mm nodule in the right upper lobe, stable compared with the prior.\n\n"
        "IMPRESSION:\nStable nodule.",
        "FINDINGS:\n8 mm nodule in the right upper lobe.\n\nIMPRESSION:\nRight upper lobe nodule.",
    ),
    (
        "FINDINGS:\nPossible small left pneumothorax.\n\nIMPRESSION:\nPossible pneumothorax.",
        "FINDINGS:\nSmall left pneumothorax.\n\nIMPRESSION:\nSmall left pneumothorax.",
    ),
]
RADIOLOGISTS = 40


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def ensure_database(url: str, reseed: bool) -> None:
    """Create the database named in ``url`` (dropping it first with ``reseed``)."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and reseed:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def seed(studies: int) -> dict[str, float]:
    """Fill the database through SQL set operations; returns seconds per step."""
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from inference.compare import compare
    from portal.records.models import ModelVersion, sha256_text

    timings: dict[str, float] = {}
    radiologist_group = Group.objects.get_or_create(name="radiologist")[0]
    rads = []
    for i in range(RADIOLOGISTS):
        user, _ = User.objects.get_or_create(
            username=f"bench_rad{i:02d}", defaults={"last_name": f"Reader{i}"}
        )
        user.groups.add(radiologist_group)
        rads.append(user.pk)
    reviewer, _ = User.objects.get_or_create(username="bench_reviewer")
    reviewer.groups.add(Group.objects.get_or_create(name="qa_reviewer")[0])
    chair, _ = User.objects.get_or_create(username="bench_chair")
    chair.groups.add(Group.objects.get_or_create(name="qa_chair")[0])
    models = [
        ModelVersion.objects.get_or_create(
            name="bench-model", version=f"{v}.0.0", defaults={"status": "active"}
        )[0].pk
        for v in (1, 2, 3)
    ]
    templates, tpl_discrepancies = [], []
    for t, (draft, signed) in enumerate(PAIRS):
        result = compare(draft, signed)
        sig = sum(1 for d in result.discrepancies if d.significance == "significant")
        templates.append(
            (
                t,
                draft,
                signed,
                sha256_text(draft),
                sha256_text(signed),
                result.radpeer,
                sig,
                len(result.discrepancies) - sig,
            )
        )
        for d in result.discrepancies:
            cs, ce = d.candidate_span or (None, None)
            rs, re_ = d.reference_span or (None, None)
            tpl_discrepancies.append(
                (
                    t,
                    d.category,
                    d.significance,
                    d.finding,
                    d.candidate_text or "",
                    cs,
                    ce,
                    d.reference_text or "",
                    rs,
                    re_,
                    d.explanation,
                )
            )
    n, nt = studies, len(PAIRS)
    with connection.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE tpl (t int, draft text, signed text, dsha text, ssha text, radpeer text, "
            "sig int, minor int)"
        )
        cur.executemany("INSERT INTO tpl VALUES (%s,%s,%s,%s,%s,%s,%s,%s)", templates)
        cur.execute(
            "CREATE TEMP TABLE tpl_d (t int, category text, significance text, finding text, ctext text, "
            "cs int, ce int, rtext text, rs int, re int, explanation text)"
        )
        cur.executemany("INSERT INTO tpl_d VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", tpl_discrepancies)
        steps = [
            (
                "patients",
                f"""INSERT INTO records_patient (id, mrn, family_name, given_name, sex, created_at)
                SELECT i, 'BMRN' || i, 'Bench', 'Patient', 'U', now() FROM generate_series(1, {n}) i""",
            ),
            (
                "studies",
                f"""INSERT INTO records_study (id, accession_number, patient_id, modality, body_part,
                specialty, study_datetime, description, priority, referring_physician, dicom_header,
                created_at)
                SELECT i, 'BACC' || i, i, (ARRAY['CR','CT','MR','US'])[1 + i % 4], '',
                  (ARRAY['chest','neuro','musculoskeletal','abdominal','breast'])[1 + (i / 7) % 5],
                  now() - make_interval(mins => ((i::bigint * 7919) % (365 * 1440))::int),
                  'BENCH', 'routine', '', '{{}}', now() FROM generate_series(1, {n}) i""",
            ),
            (
                "ai_outputs",
                f"""INSERT INTO records_aioutput (id, study_id, kind, model_version_id, inputs,
                generation_settings, text, text_sha256, payload_sha256, prompt_tokens, completion_tokens,
                latency_ms, generated_at, origin, created_at)
                SELECT s.id, s.id, 'report_draft', (ARRAY{models})[1 + s.id % 3],
                  '{{"indication": "Cough"}}', '{{"decoding": "greedy"}}', tpl.draft, tpl.dsha, tpl.dsha,
                  40, 20, 35.0,
                  s.study_datetime + interval '5 minutes', 'clinical', now()
                FROM records_study s JOIN tpl ON tpl.t = s.id % {nt}""",
            ),
            (
                "signed_reports",
                f"""INSERT INTO records_signedreport (id, study_id, radiologist_id, sections, text,
                text_sha256, payload_sha256, signed_at, status, created_at)
                SELECT s.id, s.id, (ARRAY{rads})[1 + s.id % {RADIOLOGISTS}], '{{}}', tpl.signed,
                  tpl.ssha, tpl.ssha,
                  s.study_datetime + interval '1 hour', 'final', now()
                FROM records_study s JOIN tpl ON tpl.t = s.id % {nt}""",
            ),
            (
                "comparisons",
                f"""INSERT INTO review_comparison (id, study_id, candidate_id, reference_id,
                radpeer_suggested, scores, significant_count, minor_count, created_at, study_date,
                specialty, modality, model_version_id, radiologist_id, review_status)
                SELECT s.id, s.id, s.id, s.id, tpl.radpeer, '{{}}', tpl.sig, tpl.minor, now(),
                  s.study_datetime, s.specialty, s.modality, (ARRAY{models})[1 + s.id % 3],
                  (ARRAY{rads})[1 + s.id % {RADIOLOGISTS}],
                  CASE WHEN s.id % 100 = 0 THEN 'reviewed' WHEN s.id % 100 = 1 THEN 'assigned'
                  ELSE 'unassigned' END
                FROM records_study s JOIN tpl ON tpl.t = s.id % {nt}""",
            ),
            (
                "discrepancies",
                """INSERT INTO review_discrepancy (comparison_id, category, significance, finding,
                candidate_text, candidate_start, candidate_end, reference_text, reference_start,
                reference_end, explanation)
                SELECT c.id, d.category, d.significance, d.finding, d.ctext, d.cs, d.ce, d.rtext, d.rs, d.re,
                  d.explanation FROM review_comparison c JOIN tpl_d d ON d.t = c.id % """
                + str(nt),
            ),
            (
                "assignments",
                f"""INSERT INTO review_assignment (comparison_id, reviewer_id, assigned_by_id,
                created_at, completed_at)
                SELECT c.id, {reviewer.pk}, {chair.pk}, now(), CASE WHEN c.id % 100 = 0 THEN now() END
                FROM review_comparison c WHERE c.id % 100 IN (0, 1)""",
            ),
            (
                "reviews",
                f"""INSERT INTO review_review (comparison_id, reviewer_id, radpeer, comment, submitted_at)
                SELECT c.id, {reviewer.pk}, (ARRAY['1','1','1','2a','2b','3a','3b'])[1 + (c.id / 100) % 7],
                  'Bench review.', now() FROM review_comparison c WHERE c.id % 100 = 0""",
            ),
            (
                "feedback",
                """INSERT INTO review_feedback (review_id, comparison_id, radiologist_id, message,
                created_at) SELECT r.id, r.comparison_id, c.radiologist_id, 'Bench feedback.', now()
                FROM review_review r JOIN review_comparison c ON c.id = r.comparison_id
                WHERE r.comparison_id % 300 = 0""",
            ),
        ]
        for name, sql in steps:
            started = time.perf_counter()
            cur.execute(sql)
            timings[f"seed {name}"] = time.perf_counter() - started
        for table in (
            "records_patient",
            "records_study",
            "records_aioutput",
            "records_signedreport",
            "review_comparison",
        ):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        started = time.perf_counter()
        cur.execute("ANALYZE")
        timings["ANALYZE"] = time.perf_counter() - started
    return timings


class _Counter:
    """A database execute wrapper that records every statement of one request."""

    def __init__(self, sink: list[str]) -> None:
        self.sink = sink

    def __call__(self, execute, sql, params, many, context):
        self.sink.append(sql)
        return execute(sql, params, many, context)


def measure(requests: int) -> list[tuple[str, float, float, int, int]]:
    """Median and p95 of each page, and the SQL queries of one request."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from portal.review.models import Comparison

    top = Comparison.objects.order_by("-id").values_list("id", flat=True).first()
    rng = random.Random(1)
    reviewer = Client()
    reviewer.force_login(User.objects.get(username="bench_reviewer"))
    chair = Client()
    chair.force_login(User.objects.get(username="bench_chair"))
    radiologist = Client()
    radiologist.force_login(User.objects.get(username="bench_rad07"))
    deep = reviewer.get("/review/queue/?sort=-date")
    for _ in range(19):  # walk 20 pages deep to get a realistic cursor
        text = deep.content.decode()
        marker = 'id="queue-next-page"'
        href = text[: text.index(marker)].rsplit('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        deep = reviewer.get(href)
    deep_url = href
    pages = [
        ("queue, newest first", reviewer, lambda: "/review/queue/"),
        ("queue, chair (names, assign form)", chair, lambda: "/review/queue/"),
        (
            "queue, specialty+modality+significant",
            reviewer,
            lambda: "/review/queue/?specialty=neuro&modality=CT&significance=significant",
        ),
        (
            "queue, category=location, by significance",
            reviewer,
            lambda: "/review/queue/?category=location&sort=-significant",
        ),
        (
            "queue, status=reviewed, model version",
            reviewer,
            lambda: (
                "/review/queue/?status=reviewed&model_version="
                + str(Comparison.objects.get(pk=top).model_version_id)
            ),
        ),
        (
            "queue, date range",
            reviewer,
            lambda: "/review/queue/?date_from=2026-06-01&date_to=2026-06-30&sort=date",
        ),
        ("queue, page 20 via cursor", reviewer, lambda: deep_url),
        ("case (random of all)", reviewer, lambda: f"/review/cases/{rng.randint(1, top)}/?sort=-date"),
        (
            "case, chair (names, neighbours)",
            chair,
            lambda: f"/review/cases/{rng.randint(1, top)}/?specialty=chest",
        ),
        ("dashboard, 180 days", reviewer, lambda: "/review/dashboard/"),
        ("dashboard, 365 days", chair, lambda: "/review/dashboard/?period=365"),
        ("my feedback (radiologist)", radiologist, lambda: "/review/feedback/?period=365"),
        ("performance summary (chair)", chair, lambda: "/review/performance/?period=365"),
    ]
    results = []
    for name, client, url in pages:
        client.get(url())  # warm caches and the plan
        queries: list[str] = []
        with connection.execute_wrapper(_Counter(queries)):
            response = client.get(url())
        assert response.status_code == 200, (name, response.status_code)
        times = []
        for _ in range(requests):
            target = url()
            started = time.perf_counter()
            response = client.get(target)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (name, target, response.status_code)
        results.append((name, statistics.median(times), _percentile(times, 0.95), len(queries), requests))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--reseed", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database (it is created when missing).")
    ensure_database(url, args.reseed)

    import django

    django.setup()
    from django.core.management import call_command

    from portal.records.models import Study

    call_command("migrate", verbosity=0)
    from portal.review.services import daily_stats_refresh

    timings = {}
    present = Study.objects.count()
    if present == 0:
        timings = seed(args.studies)
    elif present != args.studies:
        raise SystemExit(f"The database holds {present} studies, not {args.studies}: pass --reseed.")
    started = time.perf_counter()
    daily_stats_refresh()  # the periodic task's work, measured (and the rollup current for the pages)
    timings["daily_stats_refresh (dashboard rollup, periodic task)"] = time.perf_counter() - started
    print(f"# bench/pages.py on {platform.node()} ({os.cpu_count()} CPUs), load {os.getloadavg()[0]:.1f}")
    print(f"studies: {Study.objects.count():,}")
    for name, seconds in timings.items():
        print(f"| {name} | {seconds:.1f} s |")
    print("| page | median | p95 | SQL queries | requests |\n| --- | --- | --- | --- | --- |")
    for name, median, p95, queries, n in measure(args.requests):
        print(f"| {name} | {median:.1f} ms | {p95:.1f} ms | {queries} | {n} |", flush=True)


if __name__ == "__main__":
    main()
