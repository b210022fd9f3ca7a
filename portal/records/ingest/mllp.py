"""MLLP (Minimal Lower Layer Protocol) framing, a threaded MLLP server and a small client.

A message travels as ``0x0B`` + message bytes + ``0x1C 0x0D``. Senders keep one TCP connection
open and send messages back to back, each answered by one framed ACK before the next, though
nothing stops them from pipelining; TCP may split or merge frames arbitrarily, hence the
incremental :class:`MllpDecoder`.

The server knows nothing about HL7 semantics or storage: it hands each message's bytes to a
``handler`` (the service layer's ``bytes -> ACK bytes`` function) and frames whatever comes back.
A handler that raises gets the sender a generic ``AR`` ACK and the connection stays up; an
oversized message gets an ``AR`` ACK and the connection is closed, because the rest of the
stream can no longer be trusted to be in sync.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Callable

from portal.records.ingest.hl7_ack import build_ack
from portal.records.ingest.payloads import TOO_LARGE, AdapterError

__all__ = [
    "END_BLOCK",
    "START_BLOCK",
    "MllpDecoder",
    "MllpFrameTooLarge",
    "MllpServer",
    "frame",
    "send_mllp",
    "serve_mllp",
]

logger = logging.getLogger(__name__)

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576
DEFAULT_IDLE_TIMEOUT = 60.0
_RECV_BYTES = 65_536
_HEAD_BYTES = 4096  # kept from an oversized message so its ACK can still echo MSH-10

Handler = Callable[[bytes], bytes]


def frame(message: bytes) -> bytes:
    """Wrap one message in MLLP start and end blocks."""
    if START_BLOCK in message or END_BLOCK in message:
        # The framing bytes cannot be escaped; a message containing them would desynchronise
        # the receiver. HL7 text never legitimately contains them.
        raise ValueError("message contains MLLP framing bytes")
    return START_BLOCK + message + END_BLOCK


class MllpFrameTooLarge(AdapterError):
    """A frame grew past the decoder's limit.

    ``head`` holds the first bytes of the offending message (enough for its MSH segment, so the
    rejection can name the control id) and ``completed`` the messages that were complete in the
    same :meth:`MllpDecoder.feed` call before the limit was hit, which must still be answered.
    """

    def __init__(self, max_bytes: int, head: bytes, completed: list[bytes]) -> None:
        super().__init__(TOO_LARGE, f"message larger than {max_bytes} bytes", "MLLP")
        self.head = head
        self.completed = completed

    def __reduce__(self) -> tuple:
        # Exception pickling replays ``args`` into __init__, whose signature differs here.
        return (_rebuild_too_large, (self.message, self.head, self.completed))


def _rebuild_too_large(message: str, head: bytes, completed: list[bytes]) -> MllpFrameTooLarge:
    error = MllpFrameTooLarge(0, head, completed)
    error.message = message
    return error


class MllpDecoder:
    """Incremental MLLP de-framer: :meth:`feed` bytes as they arrive, get whole messages back.

    Bytes outside a frame (line noise, keep-alive newlines) are discarded. A start block inside
    an unfinished frame abandons that frame and starts a new one, which resynchronises after a
    sender crashed mid-message. Memory is bounded by ``max_message_bytes``.
    """

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be positive")
        self.max_message_bytes = max_message_bytes
        self._buffer = bytearray()
        self._in_frame = False
        self._discarding = False  # inside an oversized frame: drop bytes until its end block
        self._ends_with_fs = False  # last frame byte seen was 0x1C: the end block may straddle feeds
        self._leftover = b""  # input not yet consumed when an oversized frame interrupted feed()

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame held so far."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Consume ``data``; return the messages it completed, in order, without framing.

        Raises :class:`MllpFrameTooLarge` (an :class:`AdapterError` with code ``too_large``)
        when a frame exceeds the limit. The decoder stays usable: it skips the rest of that
        frame, and input of this call that was not consumed yet is kept and decoded by the next
        call (``feed(b"")`` continues).
        """
        data = self._leftover + bytes(data)
        self._leftover = b""
        messages: list[bytes] = []
        pos = 0
        while pos < len(data):
            if not self._in_frame:
                start = data.find(START_BLOCK, pos)
                if start == -1:
                    break  # noise outside a frame
                self._start_frame()
                pos = start + 1
                continue
            if self._ends_with_fs and data[pos : pos + 1] == b"\r":
                pos += 1
                self._end_frame(messages, data[pos:], drop_last=True)
                continue
            start = data.find(START_BLOCK, pos)
            end = data.find(END_BLOCK, pos)
            if start != -1 and (end == -1 or start < end):
                self._start_frame()  # a new frame began before this one ended: drop the partial one
                pos = start + 1
                continue
            stop = len(data) if end == -1 else end
            try:
                self._append(data[pos:stop], messages, at_input_end=end == -1)
            except MllpFrameTooLarge:
                self._leftover = data[stop:]
                raise
            if end == -1:
                break
            pos = end + len(END_BLOCK)
            self._end_frame(messages, data[pos:], drop_last=False)
        return messages

    def _start_frame(self) -> None:
        self._in_frame = True
        self._discarding = False
        self._ends_with_fs = False
        self._buffer.clear()

    def _end_frame(self, messages: list[bytes], rest: bytes, *, drop_last: bool) -> None:
        if drop_last and self._buffer:
            del self._buffer[-1:]  # the 0x1C that opened the end block
        message = None if self._discarding else bytes(self._buffer)
        self._in_frame = False
        self._discarding = False
        self._ends_with_fs = False
        self._buffer.clear()
        if message is None:
            return
        if len(message) > self.max_message_bytes:
            # Only possible when the frame's last content byte was 0x1C and arrived at the end
            # of a feed, where it could not yet be told apart from the end block.
            self._leftover = rest
            raise MllpFrameTooLarge(self.max_message_bytes, message[:_HEAD_BYTES], messages)
        messages.append(message)

    def _append(self, chunk: bytes, completed: list[bytes], *, at_input_end: bool) -> None:
        if not chunk:
            return
        self._ends_with_fs = at_input_end and chunk.endswith(b"\x1c")
        if self._discarding:
            # Keep only a trailing 0x1C so that a straddling end block is still recognised.
            self._buffer[:] = b"\x1c" if self._ends_with_fs else b""
            return
        self._buffer += chunk
        # A trailing 0x1C may be the first half of the end block: not counted as content yet.
        size = len(self._buffer) - (1 if self._ends_with_fs else 0)
        if size > self.max_message_bytes:
            head = bytes(self._buffer[:_HEAD_BYTES])
            self._discarding = True
            self._buffer[:] = b"\x1c" if self._ends_with_fs else b""
            raise MllpFrameTooLarge(self.max_message_bytes, head, completed)


# --- server ---------------------------------------------------------------------------------------
def _generic_rejection(message: bytes, error: AdapterError) -> bytes:
    """An AR ACK naming the message's control id when its MSH can be read; never raises."""
    try:
        return build_ack(message, code="AR", error=error).encode("utf-8")
    except Exception:  # the fallback of the fallback: a fixed, minimal ACK
        logger.exception("could not build an MLLP rejection ACK")
        return b"MSH|^~\\&|||||||ACK|0|P|2.5\rMSA|AR|\r"


class _MllpRequestHandler(socketserver.BaseRequestHandler):
    """One TCP connection: decode frames, call the application handler, answer each frame."""

    server: MllpServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(self.server.idle_timeout)
        decoder = MllpDecoder(self.server.max_message_bytes)
        while True:
            try:
                data = sock.recv(_RECV_BYTES)
            except (TimeoutError, OSError):
                return  # idle too long or connection reset: nothing to answer
            if not data:
                return
            try:
                messages = decoder.feed(data)
            except MllpFrameTooLarge as exc:
                for message in exc.completed:
                    self._answer(sock, self.server.dispatch(message))
                self._answer(sock, _generic_rejection(exc.head, exc))
                return
            for message in messages:
                if not self._answer(sock, self.server.dispatch(message)):
                    return

    def finish(self) -> None:
        """The sender hung up (or went idle): let the application release what this thread held."""
        if self.server.on_disconnect is not None:
            try:
                self.server.on_disconnect()
            except Exception:
                logger.exception("MLLP on_disconnect failed")

    @staticmethod
    def _answer(sock: socket.socket, reply: bytes) -> bool:
        try:
            sock.sendall(frame(reply))
        except (OSError, ValueError):
            return False
        return True


class MllpServer(socketserver.ThreadingTCPServer):
    """A threaded MLLP listener; use :func:`serve_mllp` unless you need the object itself.

    ``server_address`` holds the bound address (useful with port 0).
    """

    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        handler: Handler,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        self.handler = handler
        self.max_message_bytes = max_message_bytes
        self.idle_timeout = idle_timeout
        self.on_disconnect = on_disconnect
        super().__init__(address, _MllpRequestHandler)

    def dispatch(self, message: bytes) -> bytes:
        """Call the application handler; turn any failure into a generic AR ACK."""
        try:
            reply = self.handler(message)
            if isinstance(reply, str):
                reply = reply.encode("utf-8")
            if not isinstance(reply, bytes | bytearray) or not reply:
                raise TypeError("MLLP handler must return the ACK as non-empty bytes")
            return bytes(reply)
        except Exception as exc:
            # Log the type and traceback, not the message: it is full of patient data.
            logger.error("MLLP handler failed: %s", type(exc).__name__, exc_info=True)
            error = AdapterError("internal", "application internal error")
            return _generic_rejection(message, error)


def serve_mllp(
    host: str,
    port: int,
    handler: Handler,
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
    on_bound: Callable[[tuple[str, int]], None] | None = None,
    on_disconnect: Callable[[], None] | None = None,
) -> None:
    """Listen for MLLP on ``host:port`` and answer every message with ``handler(message)``.

    Blocks until ``stop`` is set (or forever without one). ``on_bound`` is called with the
    actual ``(host, port)`` once listening (pass port 0 for an ephemeral port), then ``ready``
    is set. Each connection runs in a daemon thread and is closed after ``idle_timeout``
    seconds without data. Handler exceptions and oversized messages are answered with ``AR``
    ACKs; the server itself never stops because of a message. ``on_disconnect`` is called in a
    connection's thread when that connection ends (to release per-thread resources).
    """
    server = MllpServer(
        (host, port),
        handler,
        max_message_bytes=max_message_bytes,
        idle_timeout=idle_timeout,
        on_disconnect=on_disconnect,
    )
    try:
        if on_bound is not None:
            bound_host, bound_port = server.server_address[:2]
            on_bound((str(bound_host), int(bound_port)))
        if stop is not None:
            # serve_forever can only be stopped from another thread.
            threading.Thread(
                target=lambda: (stop.wait(), server.shutdown()), name="mllp-stop", daemon=True
            ).start()
        if ready is not None:
            ready.set()
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


def send_mllp(host: str, port: int, message: bytes, timeout: float = 10) -> bytes:
    """Send one message over a new connection and return the (unframed) reply.

    Raises ``ConnectionError`` when the peer closes without a complete reply and
    ``TimeoutError`` when none arrives within ``timeout`` seconds.
    """
    decoder = MllpDecoder()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(frame(message))
        while True:
            data = sock.recv(_RECV_BYTES)
            if not data:
                raise ConnectionError("connection closed before a complete MLLP reply")
            replies = decoder.feed(data)
            if replies:
                return replies[0]
