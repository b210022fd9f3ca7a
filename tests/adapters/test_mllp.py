"""MLLP framing, the incremental decoder and the threaded server (portal.records.ingest.mllp)."""

from __future__ import annotations

import pickle
import socket
import threading
import time
from collections.abc import Callable, Iterator

import hl7 as python_hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.records.ingest.hl7 import parse_oru
from portal.records.ingest.hl7_ack import build_ack
from portal.records.ingest.mllp import MllpDecoder, MllpFrameTooLarge, frame, send_mllp, serve_mllp
from portal.records.ingest.payloads import AdapterError


# --- framing and decoding -----------------------------------------------------------------------
def test_frame_wraps_and_refuses_framing_bytes_inside():
    assert frame(b"MSH|x") == b"\x0bMSH|x\x1c\r"
    with pytest.raises(ValueError):
        frame(b"a\x1c\rb")
    with pytest.raises(ValueError):
        frame(b"a\x0bb")


def test_decoder_returns_messages_and_discards_noise():
    decoder = MllpDecoder()
    stream = b"noise\r\n" + frame(b"one") + b"\n" + frame(b"two\x1cstill two") + frame(b"")
    assert decoder.feed(stream) == [b"one", b"two\x1cstill two", b""]
    assert decoder.pending == 0


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
def test_decoder_reassembles_frames_split_anywhere(chunk):
    messages = [b"MSH|first", b"MSH|second\x1c", b"MSH|" + b"x" * 300]
    stream = b"".join(frame(m) for m in messages)
    decoder = MllpDecoder()
    out: list[bytes] = []
    for i in range(0, len(stream), chunk):
        out += decoder.feed(stream[i : i + chunk])
    assert out == messages


def test_a_new_start_block_abandons_an_unfinished_frame():
    assert MllpDecoder().feed(b"\x0bhalf a mess" + frame(b"whole")) == [b"whole"]


def test_oversized_frames_raise_and_the_decoder_recovers():
    decoder = MllpDecoder(max_message_bytes=10)
    stream = frame(b"ok") + frame(b"MSH|" + b"x" * 50) + frame(b"after")
    with pytest.raises(MllpFrameTooLarge) as err:
        decoder.feed(stream)
    assert err.value.code == "too_large"
    assert err.value.completed == [b"ok"]
    assert err.value.head.startswith(b"MSH|")
    assert decoder.feed(b"") == [b"after"]


def test_a_trailing_0x1c_counts_towards_the_limit_however_the_stream_is_split():
    stream = frame(b"y" * 10 + b"\x1c")
    for chunk in (1, 2, 11, 100):
        decoder = MllpDecoder(max_message_bytes=10)
        with pytest.raises(MllpFrameTooLarge):
            for i in range(0, len(stream), chunk):
                decoder.feed(stream[i : i + chunk])


def test_too_large_errors_pickle():
    # Celery and multiprocessing pickle exceptions; these bytes are our own, hence the noqa.
    error = pickle.loads(pickle.dumps(MllpFrameTooLarge(10, b"MSH|", [b"a"])))  # noqa: S301
    assert (error.code, error.head, error.completed) == ("too_large", b"MSH|", [b"a"])


@settings(max_examples=300, deadline=1000)
@given(st.lists(st.binary(max_size=200), max_size=10), st.integers(min_value=1, max_value=300))
def test_decoder_raises_only_adapter_errors(chunks, limit):
    decoder = MllpDecoder(max_message_bytes=limit)
    for chunk in chunks:
        try:
            messages = decoder.feed(chunk)
        except AdapterError:
            continue
        assert all(len(m) <= limit for m in messages)


@settings(max_examples=200, deadline=1000)
@given(
    st.lists(st.binary(max_size=50).filter(lambda b: b"\x0b" not in b and b"\x1c\r" not in b), max_size=5),
    st.integers(min_value=1, max_value=20),
)
def test_decoder_round_trips_any_framed_messages(messages, chunk):
    stream = b"".join(frame(m) for m in messages)
    decoder = MllpDecoder()
    out: list[bytes] = []
    for i in range(0, len(stream), chunk):
        out += decoder.feed(stream[i : i + chunk])
    assert out == messages


# --- server -------------------------------------------------------------------------------------
def ack_handler(message: bytes) -> bytes:
    """What the service layer does: parse, (store,) acknowledge."""
    try:
        result = parse_oru(message)
    except AdapterError as exc:
        return build_ack(message, code="AR", error=exc).encode()
    return build_ack(result, code="AA", text="stored").encode()


@pytest.fixture
def mllp_server() -> Iterator[Callable[..., tuple[str, int]]]:
    """Start serve_mllp on an ephemeral 127.0.0.1 port in a thread; stop it afterwards."""
    stops: list[tuple[threading.Event, threading.Thread]] = []

    def start(handler: Callable[[bytes], bytes] = ack_handler, **kwargs) -> tuple[str, int]:
        ready, stop = threading.Event(), threading.Event()
        bound: list[tuple[str, int]] = []
        thread = threading.Thread(
            target=serve_mllp,
            args=("127.0.0.1", 0, handler),
            kwargs={"ready": ready, "stop": stop, "on_bound": bound.append, **kwargs},
            daemon=True,
        )
        thread.start()
        assert ready.wait(5), "MLLP server did not start"
        stops.append((stop, thread))
        return bound[0]

    yield start
    for stop, thread in stops:
        stop.set()
        thread.join(5)
        assert not thread.is_alive()


def msa(reply: bytes) -> tuple[str, str]:
    segment = python_hl7.parse(reply.decode()).segment("MSA")
    return str(segment[1]), str(segment[2])


def recv_replies(sock: socket.socket, count: int) -> list[bytes]:
    decoder = MllpDecoder()
    replies: list[bytes] = []
    while len(replies) < count:
        data = sock.recv(65536)
        if not data:
            break
        replies += decoder.feed(data)
    return replies


def test_round_trip_over_tcp(mllp_server, sample):
    host, port = mllp_server()
    reply = send_mllp(host, port, sample("oru_final_ct_chest.hl7").encode())
    assert msa(reply) == ("AA", "RIS000123")


def test_a_refused_message_gets_an_ar_with_err(mllp_server, oru):
    host, port = mllp_server()
    reply = send_mllp(host, port, oru({"PID": {3: None}}).encode())
    assert msa(reply) == ("AR", "CTRL42")
    assert str(python_hl7.parse(reply.decode()).segment("ERR")[2]) == "PID^1^3"


def test_several_messages_in_one_stream_split_across_packets(mllp_server, oru):
    host, port = mllp_server()
    ids = [f"C{i}" for i in range(5)]
    stream = b"".join(frame(oru({"MSH": {10: i}}).encode()) for i in ids)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(stream[:7])
        time.sleep(0.05)
        for i in range(7, len(stream), 97):
            sock.sendall(stream[i : i + 97])
        replies = recv_replies(sock, len(ids))
    assert [msa(r) for r in replies] == [("AA", i) for i in ids]


def test_handler_exceptions_become_generic_ar_and_the_connection_survives(mllp_server, oru):
    calls: list[bytes] = []

    def flaky(message: bytes) -> bytes:
        calls.append(message)
        if len(calls) == 1:
            raise RuntimeError("database down")
        return ack_handler(message)

    host, port = mllp_server(flaky)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(frame(oru({"MSH": {10: "FIRST"}}).encode()))
        first = recv_replies(sock, 1)[0]
        sock.sendall(frame(oru({"MSH": {10: "SECOND"}}).encode()))
        second = recv_replies(sock, 1)[0]
    assert msa(first) == ("AR", "FIRST")
    assert str(python_hl7.parse(first.decode()).segment("ERR")[3][0][0]) == "207"
    assert b"database down" not in first
    assert msa(second) == ("AA", "SECOND")


def test_a_handler_returning_nothing_is_treated_as_a_failure(mllp_server, oru):
    host, port = mllp_server(lambda message: b"")
    assert msa(send_mllp(host, port, oru().encode()))[0] == "AR"


def test_oversized_messages_get_ar_and_the_connection_is_closed(mllp_server, oru):
    host, port = mllp_server(max_message_bytes=2000)
    big = oru({"MSH": {10: "BIG"}, "OBX": {5: "x" * 5000}}).encode()
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(frame(oru({"MSH": {10: "SMALL"}}).encode()) + frame(big))
        replies = recv_replies(sock, 3)
        assert sock.recv(1) == b""  # closed by the server
    assert [msa(r) for r in replies] == [("AA", "SMALL"), ("AR", "BIG")]


def test_idle_connections_are_closed(mllp_server):
    host, port = mllp_server(idle_timeout=0.3)
    with socket.create_connection((host, port), timeout=5) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - started < 4


def test_the_server_keeps_serving_after_a_client_vanishes(mllp_server, oru):
    host, port = mllp_server()
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"\x0bMSH|half a message")
    assert msa(send_mllp(host, port, oru().encode())) == ("AA", "CTRL42")


def test_send_mllp_reports_a_closed_connection():
    listener = socket.create_server(("127.0.0.1", 0))
    host, port = listener.getsockname()[:2]

    def accept_and_close() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.close()

    thread = threading.Thread(target=accept_and_close, daemon=True)
    thread.start()
    try:
        with pytest.raises(ConnectionError):
            send_mllp(host, port, b"MSH|x", timeout=5)
    finally:
        thread.join(5)
        listener.close()


def test_on_disconnect_runs_in_the_connection_thread_once_the_sender_hangs_up(mllp_server, oru):
    handled: list[int] = []
    released: list[int] = []
    done = threading.Event()

    def handler(message: bytes) -> bytes:
        handled.append(threading.get_ident())
        return ack_handler(message)

    def on_disconnect() -> None:
        released.append(threading.get_ident())
        done.set()

    host, port = mllp_server(handler, on_disconnect=on_disconnect)
    with socket.create_connection((host, port), timeout=5) as sock:
        for _ in range(3):  # one connection, several messages: nothing released between them
            sock.sendall(frame(oru().encode()))
            assert msa(recv_replies(sock, 1)[0])[0] == "AA"
        assert released == []
    assert done.wait(5)
    assert released == [handled[0]] and set(handled) == {handled[0]}
