"""``manage.py register_model PATH --specialty S``: register a hospital's own model directory.

An ONNX artifact directory is registered as is after its layout is checked; a Hugging Face causal model
directory is exported with optimum first (needs the ``train`` extra). See docs/models.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit import log as audit
from inference.training.common import TrainingError
from inference.training.external import ExternalRequest, external_model_register
from portal.core.errors import RecordError
from portal.records.models import AIOutputKind, Specialty


class Command(BaseCommand):
    """Register a model directory (ONNX as is, or a Hugging Face one exported first) as a candidate."""

    help = "Register a hospital's own model directory (ONNX, or Hugging Face exported with optimum)."
    # --version names the model version here, not Django's version: replace the built-in option.
    suppressed_base_arguments = {"--version"}

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        """The parser, letting this command's ``--version`` replace the built-in one."""
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", type=Path, help="the model directory")
        parser.add_argument(
            "--specialty", action="append", required=True, help="a specialty it serves (repeat), or 'all'"
        )
        parser.add_argument(
            "--kind",
            action="append",
            choices=AIOutputKind.values,
            help="a kind of AI output it serves (repeat; default: the card's, else report_draft)",
        )
        parser.add_argument("--name", default="", help="default: the card's name, else the directory name")
        parser.add_argument("--version", dest="model_version", default="", help="default: the card's")
        parser.add_argument("--activate", action="store_true", help="make it the serving version")

    def handle(self, *args: Any, **options: Any) -> None:
        chosen = options["specialty"]
        request = ExternalRequest(
            path=options["path"],
            specialties=list(Specialty.values) if "all" in chosen else list(dict.fromkeys(chosen)),
            kinds=options["kind"],
            name=options["name"],
            version=options["model_version"],
            activate=options["activate"],
        )
        try:
            mv = external_model_register(
                request=request, actor=None, context=audit.AuditContext(channel="register_model")
            )
        except (TrainingError, RecordError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"registered {mv.name} {mv.version} ({mv.status}) in {mv.artifact_dir}")
