"""``manage.py train_model --specialty chest [...]``: build, evaluate and register a local drafting model.

See docs/models.md. Needs the ``train`` extra (torch, transformers, optimum): the pipeline that imports
it is imported when the command runs, so that ``--help`` works and an installation without the extra
gets a clear "install .[train]" error instead of an ImportError at start-up.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit import log as audit
from inference.training.common import (
    DEFAULT_EVAL_MAX,
    DEFAULT_NAME,
    BuildRequest,
    TrainingError,
    TrainSettings,
    command_line,
    train_extra,
)
from portal.core.dates import parse_date_option
from portal.core.errors import RecordError
from portal.records.models import Specialty


def _optional_date(value: str | None, option: str) -> dt.date | None:
    return None if value is None else parse_date_option(value, option)


class Command(BaseCommand):
    """Train a model on the department's signed reports and register it as a candidate (or active)."""

    help = "Build a drafting model from the signed reports (tokenizer, GPT-2-style decoder, ONNX, card)."
    # --version names the model version here, not Django's version: replace the built-in option.
    suppressed_base_arguments = {"--version"}

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        """The parser, letting this command's ``--version`` replace the built-in one."""
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: Any) -> None:
        defaults = TrainSettings()
        parser.add_argument(
            "--specialty",
            action="append",
            required=True,
            help="a specialty to train on (repeat for several), or 'all'",
        )
        parser.add_argument("--since", help="first signing date to include (YYYY-MM-DD)")
        parser.add_argument("--until", help="last signing date to include (YYYY-MM-DD)")
        parser.add_argument("--max-steps", type=int, default=defaults.max_steps)
        parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--threads", type=int, default=defaults.threads)
        parser.add_argument("--name", default=DEFAULT_NAME)
        parser.add_argument("--version", dest="model_version", default="", help="default: the UTC build time")
        parser.add_argument("--out", type=Path, default=None, help="default: $CONCORDANCE_VAR_DIR/models/")
        parser.add_argument("--eval-max", type=int, default=DEFAULT_EVAL_MAX)
        parser.add_argument(
            "--size",
            choices=("default", "tiny"),
            default="default",
            help="'tiny' builds a very small model (tests and CI prove the pipeline with it)",
        )
        parser.add_argument("--activate", action="store_true", help="make it the serving version")

    def handle(self, *args: Any, **options: Any) -> None:
        chosen = options["specialty"]
        specialties = list(Specialty.values) if "all" in chosen else chosen
        settings = TrainSettings(
            max_steps=options["max_steps"],
            batch_size=options["batch_size"],
            seed=options["seed"],
            threads=options["threads"],
        )
        if options["size"] == "tiny":
            settings = TrainSettings(
                vocab_size=512,
                n_positions=384,
                n_embd=32,
                n_layer=2,
                n_head=2,
                warmup_steps=5,
                learning_rate=1e-2,
                max_steps=settings.max_steps,
                batch_size=settings.batch_size,
                seed=settings.seed,
                threads=settings.threads,
            )
        request = BuildRequest(
            specialties=specialties,
            name=options["name"],
            version=options["model_version"],
            since=_optional_date(options["since"], "--since"),
            until=_optional_date(options["until"], "--until"),
            out_dir=options["out"],
            settings=settings,
            eval_max=options["eval_max"],
            activate=options["activate"],
            command=command_line(),
        )
        verbose = options["verbosity"] >= 1

        def say(message: str) -> None:
            # Flushed at once: a build runs for minutes, often under nohup with stdout in a file.
            self.stdout.write(message)
            self.stdout.flush()

        try:
            with train_extra("manage.py train_model"):
                # The optional extra, imported only now (see the module docstring).
                from inference.training.pipeline import model_build
            mv = model_build(
                request=request,
                actor=None,
                context=audit.AuditContext(channel="train_model"),
                progress=say if verbose else None,
            )
        except (TrainingError, RecordError) as exc:
            raise CommandError(str(exc)) from exc
        metrics = mv.metrics or {}
        self.stdout.write(
            f"registered {mv.name} {mv.version} ({mv.status}) in {mv.artifact_dir}: "
            f"facts right {metrics.get('facts_right_share')}, "
            f"reports entirely right {metrics.get('reports_entirely_right_share')}"
        )
