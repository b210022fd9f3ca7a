"""``manage.py audit_integrator``: the dedicated integrator process (or one pass with ``--once``).

Runs integration passes every ``--interval`` seconds (at once again while a backlog remains) and signs
a checkpoint every ``--checkpoint-seconds``. Several may be started: the log head's row lock lets only
one pass run at a time, so a second process is a hot standby. SIGTERM/SIGINT finish the current
pass and exit.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import integrator
from audit.checkpoints import create_checkpoint


class Command(BaseCommand):
    """Add committed audit events to the Merkle tree and sign checkpoints, until stopped."""

    help = "Integrate committed audit events into the Merkle tree and sign checkpoints."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="run passes until caught up, then exit")
        parser.add_argument(
            "--interval", type=float, default=integrator.INTERVAL_S, help="seconds between passes"
        )
        parser.add_argument("--checkpoint-seconds", type=float, default=60.0, help="0 = never sign")
        parser.add_argument("--batch", type=int, default=integrator.DEFAULT_BATCH, help="leaves per pass")

    def handle(self, *args: Any, **options: Any) -> None:
        interval, every, batch = options["interval"], options["checkpoint_seconds"], options["batch"]
        if interval <= 0 or every < 0 or batch < 1:
            raise CommandError("--interval and --batch must be positive, --checkpoint-seconds >= 0")
        if options["once"]:
            done = integrator.integrate_all(hole_wait_s=1.0)
            self.stdout.write(
                f"integrated {done.integrated} leaves ({done.voided} void); tree size {done.size}"
            )
            return
        stopping: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda number, _frame: stopping.append(number))
        next_checkpoint = time.monotonic() + every
        while not stopping:
            step = integrator.integrate(max_batch=batch)
            if every and time.monotonic() >= next_checkpoint:
                self._checkpoint()
                next_checkpoint = time.monotonic() + every
            if step.busy or step.integrated < batch:
                time.sleep(interval)

    def _checkpoint(self) -> None:
        try:
            checkpoint = create_checkpoint()
        except (FileNotFoundError, PermissionError, ValueError) as exc:
            # Integration goes on without a key; the operator sees why nothing is signed.
            self.stderr.write(f"no checkpoint signed: {exc}")
            return
        if checkpoint is not None:
            self.stdout.write(f"checkpoint: size {checkpoint.tree_size}")
