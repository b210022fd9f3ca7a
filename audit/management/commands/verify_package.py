"""``manage.py verify_package FILE.zip [--public-key PEM] [--json]``: the standalone verifier."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit import verify_package


class Command(BaseCommand):
    """Run ``audit/verify_package.py`` (the copy shipped in every package) on a package."""

    help = "Verify a legal export package offline: prints each check and VERDICT: VALID or INVALID (exit 1)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("package", help="the export package (.zip)")
        parser.add_argument("--public-key", help="PEM file of the signing key you expect (recommended)")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        argv = [options["package"]]
        if options["public_key"]:
            argv += ["--public-key", options["public_key"]]
        if options["json"]:
            argv.append("--json")
        code = verify_package.main(argv)
        if code:
            # SystemExit keeps the verifier's exit status (1 invalid, 2 usage) instead of CommandError's 1.
            raise SystemExit(code)
