"""Benchmark of legal export packages: build time, peak memory and size for 10, 100 and 1,000 studies.

Run from the repository root::

    .venv/bin/python bench/export.py [--sizes 10 100 1000] [--seed 7]

A throwaway var dir (SQLite database, signing key, exports) is created in a temporary directory and
seeded with the synthetic demo department (``seed_demo``: study, DICOM header, AI draft with
provenance, signed report), then every study is compared by the discrepancy engine. Each package is
built in a fresh subprocess (``export_package``'s code path: request, audited build, atomic rename),
so its peak RSS is the build's own and not the seeding's; the verifier then checks it. Prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _django(var_dir: Path) -> None:
    os.environ["CONCORDANCE_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("CONCORDANCE_TLS", "0")
    os.environ["AUDIT_SIGNING_KEY_CREATE"] = "1"
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()


def seed(var_dir: Path, studies: int, seed_value: int) -> float:
    """Migrate, load the demo department and compare every study; return the seconds it took."""
    _django(var_dir)
    from django.core.management import call_command

    from portal.records.models import Study
    from portal.review.services import study_compare

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    call_command("seed_demo", studies=studies, seed=seed_value, verbosity=0)
    for study_id in Study.objects.order_by("id").values_list("id", flat=True):
        study_compare(study_id)
    return time.perf_counter() - started


def child(var_dir: Path, count: int, out: Path) -> None:
    """Build one package of the first ``count`` studies; print a JSON line of measurements."""
    _django(var_dir)
    from audit import verify_package as vp
    from audit.log import AuditContext
    from portal.legal import export_jobs
    from portal.records.models import Study

    accessions = list(Study.objects.order_by("id").values_list("accession_number", flat=True)[:count])
    # Current RSS before the build (after imports and Django set-up), and the high-water mark after it.
    rss_before = psutil.Process().memory_info().rss / 1024
    started = time.perf_counter()
    package = export_jobs.export_request(
        actor=None,
        context=AuditContext(channel="bench/export.py"),
        matter_reference="BENCH-1",
        reason="benchmark",
        accession_numbers=accessions,
        enqueue=False,
    )
    built = export_jobs.export_build(package_pk=package.pk, out_path=out)
    build_s = time.perf_counter() - started
    assert built is not None and built.status == "ready", built and built.error
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    report = vp.verify_package(out)
    verify_s = time.perf_counter() - started
    assert report.valid, report.reason
    print(
        json.dumps(
            {
                "studies": count,
                "build_s": build_s,
                "verify_s": verify_s,
                "rss_before_mb": rss_before / 1024,
                "rss_peak_mb": rss_peak / 1024,
                "size_mb": built.size / 1e6,
                "events": report.event_count,
                "files": len(report.checks) and report.checks[4].detail,
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    """Seed once, build each size in its own process, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--var-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.var_dir, args.child, args.out)
        return 0

    with tempfile.TemporaryDirectory(prefix="concordance-bench-export-") as tmp:
        var_dir = Path(tmp)
        seconds = seed(var_dir, max(args.sizes), args.seed)
        print(f"seeded {max(args.sizes)} studies (with comparisons) in {seconds:.1f} s")
        rows = []
        for size in args.sizes:
            result = subprocess.run(
                [sys.executable, __file__, "--child", str(size), "--var-dir", str(var_dir),
                 "--out", str(var_dir / f"package-{size}.zip")],
                capture_output=True, text=True, check=False, cwd=ROOT,
            )  # fmt: skip
            if result.returncode:
                print(result.stdout, result.stderr, file=sys.stderr)
                return 1
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, SQLite")
    header = ("studies", "build", "verify", "peak RSS", "at start", "ZIP", "events")
    print("{:>8} {:>9} {:>9} {:>10} {:>9} {:>9} {:>7}".format(*header))
    for r in rows:
        print(
            f"{r['studies']:>8} {r['build_s']:>8.2f}s {r['verify_s']:>8.2f}s {r['rss_peak_mb']:>8.0f}MB "
            f"{r['rss_before_mb']:>7.0f}MB {r['size_mb']:>7.2f}MB {r['events']:>7}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
