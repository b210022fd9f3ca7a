"""``manage.py mllp_listen --port 2575 [--host 127.0.0.1] --account USERNAME``: HL7 v2 over MLLP.

The listener receives ORU^R01 messages from a RIS or an AI engine over MLLP and stores each one exactly
as ``POST /api/v1/hl7`` does (:func:`portal.records.ingest.channels.receive`, logged in the inbound
message log), answering with the same ACK.
Everything it writes is attributed to the integration account named by ``--account``, so the audit
trail shows which feed a record came from. SIGINT or SIGTERM stops it between messages.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections, connection

from audit import log as audit
from portal.accounts.roles import Role, roles_of
from portal.records.ingest import channels
from portal.records.ingest.mllp import serve_mllp
from portal.records.models import InboundChannel

DEFAULT_PORT = 2575  # the IANA port for HL7 over MLLP


def integration_account(username: str) -> AbstractBaseUser:
    """The active account named ``username`` holding the integration role, else :class:`CommandError`."""
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"No active account named {username!r}.")
    if Role.INTEGRATION not in roles_of(user):
        raise CommandError(f"The account {username!r} does not hold the integration role.")
    return user


def make_handler(user: AbstractBaseUser, *, port: int, client_address: str = "") -> Callable[[bytes], bytes]:
    """The MLLP handler: one raw message in, the ACK bytes out, stored as ``user``.

    ``serve_mllp`` hands the handler only the message, not the peer, so ``client_address`` is fixed
    for the listener (empty by default) and the channel names the port the message came in on.
    """
    context = audit.AuditContext(client_address=client_address, channel=f"MLLP :{port}")

    def handle(message: bytes) -> bytes:
        # Each MLLP connection runs in its own thread with its own DB connection, kept across its
        # messages as an HTTP worker keeps one across requests (a new PostgreSQL connection per
        # message cost more than storing the message): drop it here only when it went stale or
        # outlived CONN_MAX_AGE; listen() closes it when the sender hangs up.
        close_old_connections()
        answer = channels.receive(channel=InboundChannel.HL7_MLLP, body=message, actor=user, context=context)
        return answer.body

    return handle


def listen(
    host: str,
    port: int,
    user: AbstractBaseUser,
    *,
    stop: threading.Event,
    on_bound: Callable[[tuple[str, int]], None] | None = None,
    ready: threading.Event | None = None,
) -> None:
    """Serve MLLP on ``host:port`` until ``stop`` is set.

    Port 0 binds an ephemeral port; the handler's channel then names the port actually bound.
    """
    bound: dict[str, Callable[[bytes], bytes]] = {}

    def handler(message: bytes) -> bytes:
        return bound["handler"](message)

    def remember(address: tuple[str, int]) -> None:
        bound["handler"] = make_handler(user, port=address[1])
        if on_bound is not None:
            on_bound(address)

    def release() -> None:
        """A connection's thread ends (the sender hung up): close that thread's DB connection. The
        proxy is looked up in the calling thread; ``connection.close`` itself would be this one's."""
        connection.close()

    serve_mllp(host, port, handler, stop=stop, ready=ready, on_bound=remember, on_disconnect=release)


class Command(BaseCommand):
    """Listen for HL7 v2 ORU^R01 over MLLP and store what arrives."""

    help = "Receive HL7 v2 ORU^R01 results over MLLP and store them as the given integration account."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0: any free port)")
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
        parser.add_argument("--account", required=True, help="username of an integration account")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 <= options["port"] <= 65535:
            raise CommandError("--port must be between 0 and 65535.")
        user = integration_account(options["account"])
        stop = threading.Event()
        previous = self._install_signal_handlers(stop)
        try:

            def announce(address: tuple[str, int]) -> None:
                self.stdout.write(f"Listening for MLLP on {address[0]}:{address[1]} as {user.get_username()}")

            listen(options["host"], options["port"], user, stop=stop, on_bound=announce)
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']}: {exc.strerror}"
            ) from exc
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        self.stdout.write("MLLP listener stopped.")

    @staticmethod
    def _install_signal_handlers(stop: threading.Event) -> dict[int, Any]:
        """Turn SIGINT/SIGTERM into a clean stop; returns the handlers to restore afterwards.

        Signal handlers can only be installed from the main thread; when the command runs in another
        thread (embedded in a test or a supervisor), whoever started it stops it.
        """
        if threading.current_thread() is not threading.main_thread():
            return {}

        def request_stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, request_stop)
        return previous
