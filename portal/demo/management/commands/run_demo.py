"""``manage.py run_demo``: the whole portal on one machine, as `make demo` starts it.

Migrates, loads the synthetic department once, creates one demo login per role and an API token for
the integration account, then runs the web server (gunicorn) and a separate Celery worker (with beat)
until interrupted, restarting the worker whenever it dies (:mod:`portal.demo.supervisor`).
Credentials are random per installation and kept in var/demo-logins.json (0600).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from portal.accounts.roles import Role
from portal.core.workers import start_worker
from portal.demo.supervisor import Supervisor
from portal.records.models import Study

DEMO_USERS = [
    ("dr_okafor", Role.RADIOLOGIST),
    ("qa_reviewer", Role.QA_REVIEWER),
    ("qa_chair", Role.QA_CHAIR),
    ("legal", Role.LEGAL),
    ("auditor", Role.AUDITOR),
    ("admin", Role.ADMIN),
]
INTEGRATION_USER = "ris_integration"


class Command(BaseCommand):
    """Run the demo: web server and worker, with synthetic data."""

    help = "Migrate, seed synthetic data, and run the web server and a Celery worker until Ctrl-C."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--studies", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--no-serve", action="store_true", help="prepare everything, start nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        if not Study.objects.exists():
            self.stdout.write(f"Loading {options['studies']} synthetic studies (seed {options['seed']})...")
            call_command(
                "seed_demo",
                studies=options["studies"],
                seed=options["seed"],
                dicom_dir=settings.VAR_DIR / "dicom",
                verbosity=1,
            )
        call_command("compare_pending")
        # A signed checkpoint from the first minute: the auditor's page and verify_audit vouch for the
        # log at once instead of waiting for the worker's first scheduled checkpoint.
        call_command("audit_checkpoint", verbosity=0)
        call_command("verify_audit", origin="startup", verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        logins = self._demo_logins()
        if options["no_serve"]:
            self._print_banner(options, logins, time.monotonic() - started)
            return
        self._serve(options, logins, started)

    def _demo_logins(self) -> dict[str, Any]:
        path = settings.VAR_DIR / "demo-logins.json"
        stored: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        for username, role in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            if created or username not in stored.get("users", {}):
                password = secrets.token_urlsafe(12)
                user.set_password(password)
                user.is_staff = role == Role.ADMIN
                user.save()
                stored.setdefault("users", {})[username] = {"password": password, "role": role.value}
            user.groups.add(Group.objects.get_or_create(name=role.value)[0])
        service, _ = User.objects.get_or_create(username=INTEGRATION_USER)
        service.set_unusable_password()
        service.save()
        service.groups.add(Group.objects.get_or_create(name=Role.INTEGRATION.value)[0])
        token, _ = Token.objects.get_or_create(user=service)
        stored["api_token"] = {"username": INTEGRATION_USER, "token": token.key}
        old_umask = os.umask(0o077)
        try:
            path.write_text(json.dumps(stored, indent=2))
        finally:
            os.umask(old_umask)
        return stored

    def _print_banner(self, options: dict[str, Any], logins: dict[str, Any], elapsed: float) -> None:
        url = f"http://{options['host']}:{options['port']}/"
        lines = [
            "",
            "=" * 72,
            f"Concordance is running at {url}   (ready in {elapsed:.0f} s)",
            "",
            "Demo logins (synthetic data only; stored in var/demo-logins.json):",
        ]
        for username, info in logins["users"].items():
            lines.append(f"  {info['role']:<12} {username:<14} {info['password']}")
        token = logins["api_token"]
        lines += [
            "",
            f"API token for the integration account '{token['username']}':",
            f"  {token['token']}",
            f"  curl -H 'Authorization: Token {token['token']}' {url}api/v1/studies",
            "",
            "Next steps:",
            "  logins and token    kept in var/demo-logins.json (readable by you only)",
            "  stop                Ctrl-C here stops the web server and the worker together",
            "  worker              restarted if it dies (a 'supervisor:' line says so); pages keep working",
            "  a command           in another terminal: .venv/bin/python manage.py verify_audit",
            "                      (all commands: .venv/bin/python manage.py help; README 'Useful commands')",
            "  start afresh        make clean-demo && make demo",
            "=" * 72,
        ]
        self.stdout.write("\n".join(lines))

    def _serve(self, options: dict[str, Any], logins: dict[str, Any], started: float) -> None:
        env = os.environ.copy()
        supervisor = Supervisor(
            start_web=lambda: _start_web(options["host"], options["port"], env),
            start_worker=lambda: start_worker(
                env=env,
                solo=False,
                loglevel="INFO",
                concurrency=2,
                beat_schedule=settings.VAR_DIR / "celerybeat-schedule",
                own_process_group=True,
            ),
            log=self.stdout,
        )

        def stop(*_: Any) -> None:
            supervisor.stop_requested.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        supervisor.start()
        self._print_banner(options, logins, time.monotonic() - started)
        supervisor.watch()


def _start_web(host: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    """gunicorn serving the portal on ``host:port`` (2 processes x 4 threads)."""
    return subprocess.Popen(
        [  # fixed argv, no shell
            str(Path(sys.executable).parent / "gunicorn"),
            "portal.wsgi:application",
            "--bind",
            f"{host}:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--access-logfile",
            "-",
            "--access-logformat",
            '%(h)s "%(m)s %(U)s" %(s)s %(L)ss',  # path without query string: no PHI in logs
        ],
        env=env,
    )
