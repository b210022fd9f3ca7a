"""``manage.py optimise_model NAME:VERSION --variant fused|int8 --version NEW``: a derived model version.

The same weights in the fused-attention graph (GPT-2; adopted only when its drafts are identical to the
parent's), or int8 weights by dynamic quantisation; registered as a version of its own with the parent
recorded. Needs the ``train`` extra. See docs/models.md.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit import log as audit
from inference.selectors import model_version_by_reference
from inference.training.common import TrainingError
from inference.training.variants import VARIANTS, VariantRequest, variant_build
from portal.core.errors import RecordError


class Command(BaseCommand):
    """Build and register a fused-graph or int8 version of a registered fp32 model version."""

    help = "Register the fused-graph or int8 variant of a model version as its own version."
    suppressed_base_arguments = {"--version"}

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        """The parser, letting this command's ``--version`` replace the built-in one."""
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("model", help="the parent version: NAME:VERSION or its id")
        parser.add_argument("--variant", choices=VARIANTS, required=True)
        parser.add_argument("--version", dest="model_version", required=True, help="the new version's label")
        parser.add_argument("--eval-prompts", type=int, default=24, help="evaluation prompts (1-500)")
        parser.add_argument("--activate", action="store_true", help="make it the serving version")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["eval_prompts"] <= 500:
            raise CommandError("--eval-prompts must be between 1 and 500")
        try:
            request = VariantRequest(
                model_version=model_version_by_reference(options["model"]),
                variant=options["variant"],
                version=options["model_version"],
                eval_prompts=options["eval_prompts"],
                activate=options["activate"],
            )
            mv = variant_build(
                request=request, actor=None, context=audit.AuditContext(channel="optimise_model")
            )
        except (TrainingError, RecordError) as exc:
            raise CommandError(str(exc)) from exc
        evaluation = mv.metrics.get("variant_evaluation", {})
        share = 100 * evaluation.get("identical_to_parent_share", 0)
        self.stdout.write(
            f"registered {mv.name} {mv.version} ({mv.quantisation}, {mv.status}) in {mv.artifact_dir}; "
            f"{share:.0f}% of {evaluation.get('prompts')} drafts identical to the parent's"
        )
