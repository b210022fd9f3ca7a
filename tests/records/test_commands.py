"""The ingestion commands: ``mllp_listen`` (HL7 over MLLP) and ``import_dicom`` (a folder of DICOM files)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import hl7 as python_hl7
import pydicom
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pydicom.data import get_testdata_file

from audit.models import AuditEvent
from portal.demo.synthetic import generate_department, write_dicom
from portal.records.ingest.mllp import send_mllp
from portal.records.management.commands.mllp_listen import listen
from portal.records.models import SignedReport, Study
from tests.adapters.conftest import build_oru

SIGNED_BY_ALICE = {32: "alice"}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """The personas' default PBKDF2 hashing costs seconds per test on a small machine; MD5 is enough here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def msa(ack: bytes) -> tuple[str, str, str]:
    segment = python_hl7.parse(ack.decode("utf-8")).segment("MSA")
    return str(segment[1]), str(segment[2]), str(segment[3])


def two_messages() -> list[bytes]:
    """Two final reports of two different studies."""
    return [
        build_oru({"OBR": SIGNED_BY_ALICE}).encode(),
        build_oru({"MSH": {10: "CTRL43"}, "OBR": {**SIGNED_BY_ALICE, 3: "ACC2"}}).encode(),
    ]


# --- mllp_listen -----------------------------------------------------------------------------------
@pytest.fixture
def listener(personas) -> Iterator[tuple[str, int]]:
    """The listener running in a thread on an ephemeral port as ris; stopped after the test."""
    stop = threading.Event()
    ready = threading.Event()
    bound: list[tuple[str, int]] = []
    thread = threading.Thread(
        target=listen,
        args=("127.0.0.1", 0, personas["ris"]),
        kwargs={"stop": stop, "ready": ready, "on_bound": bound.append},
        daemon=True,
    )
    thread.start()
    assert ready.wait(10), "the listener did not start"
    yield bound[0]
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def _connection_threads_ended(seconds: float = 5) -> bool:
    """Wait until the listener's per-connection threads (socketserver's) have all finished."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any("process_request_thread" in t.name for t in threading.enumerate()):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.django_db(transaction=True)
def test_the_listener_stores_each_message_and_acknowledges_it(listener, caplog):
    host, port = listener

    acks = [send_mllp(host, port, message) for message in two_messages()]

    # Each sender hung up: its thread closed its own database connection, without an error.
    assert _connection_threads_ended()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]

    assert [msa(ack) for ack in acks] == [("AA", "CTRL42", "stored"), ("AA", "CTRL43", "stored")]
    assert sorted(Study.objects.values_list("accession_number", flat=True)) == ["ACC1", "ACC2"]
    assert SignedReport.objects.count() == 2
    events = AuditEvent.objects.filter(action="signed_report.final")
    assert {(e.actor_username, e.channel) for e in events} == {("ris", f"MLLP :{port}")}


@pytest.mark.django_db(transaction=True)
def test_the_listener_answers_a_resend_and_a_bad_message_without_storing_more(listener):
    host, port = listener
    message = two_messages()[0]
    send_mllp(host, port, message)

    again = send_mllp(host, port, message)
    garbage = send_mllp(host, port, b"MSH|^~\\&|RIS|H|C|Q|20240301||ADT^A01|X9|P|2.5.1\r")

    assert msa(again) == ("AA", "CTRL42", "already stored")
    assert msa(garbage)[:2] == ("AR", "X9")
    assert SignedReport.objects.count() == 1


class _Announcing(io.StringIO):
    """Command output that tells a waiting thread the moment the listener reports its address."""

    def __init__(self) -> None:
        super().__init__()
        self.listening = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if "Listening" in text:
            self.listening.set()
        return written


@pytest.mark.django_db(transaction=True)
def test_the_command_serves_until_sigterm_and_then_stops_cleanly(personas):
    assert threading.current_thread() is threading.main_thread()  # signals are delivered here
    out = _Announcing()
    acks: list[bytes] = []

    def client() -> None:
        try:
            if out.listening.wait(10):
                port = int(out.getvalue().split("Listening for MLLP on 127.0.0.1:")[1].split()[0])
                acks.extend(send_mllp("127.0.0.1", port, message) for message in two_messages())
        finally:
            # Always stop the command, even when the exchange failed: the test must not hang.
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    call_command("mllp_listen", port=0, account="ris", stdout=out)
    thread.join(10)

    assert [msa(ack)[0] for ack in acks] == ["AA", "AA"]
    assert SignedReport.objects.count() == 2
    assert out.getvalue().rstrip().endswith("MLLP listener stopped.")
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers are restored


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("account", "reason"),
    [("nobody", "No active account"), ("alice", "integration role"), ("eve", "integration role")],
)
def test_the_listener_needs_an_existing_integration_account(personas, account, reason):
    with pytest.raises(CommandError, match=reason):
        call_command("mllp_listen", port=0, account=account)


# --- import_dicom ----------------------------------------------------------------------------------
@pytest.fixture
def dicom_dir(tmp_path) -> Path:
    """Three synthetic studies (one in a subfolder), a junk file and a truncated DICOM file."""
    department = generate_department(studies=3, seed=1)
    folder = tmp_path / "incoming"
    (folder / "sub").mkdir(parents=True)
    for index, study in enumerate(department.studies):
        target = folder / ("sub" if index == 0 else "") / f"study{index}.dcm"
        write_dicom(study, department.patient(study.patient_mrn), target)
    (folder / "notes.txt").write_text("not a DICOM file\n")
    shutil.copy(get_testdata_file("MR_truncated.dcm", download=False), folder / "broken.dcm")
    return folder


def run_import(*args: str) -> tuple[str, str, CommandError | None]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_dicom", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue(), exc
    return out.getvalue(), err.getvalue(), None


@pytest.mark.django_db
def test_import_stores_every_readable_study_reports_the_broken_file_and_exits_1(dicom_dir):
    out, err, error = run_import(str(dicom_dir))

    assert out.strip() == "imported 3, already present 0, failed 1"
    assert err.startswith("broken.dcm: malformed: DICOM file is truncated")
    assert err.count("\n") == 1  # one line per failed file; the junk file is not DICOM and is skipped
    assert error is not None and error.returncode == 1
    assert Study.objects.count() == 3
    assert set(AuditEvent.objects.values_list("actor_kind", "channel")) == {("system", "import_dicom")}


@pytest.mark.django_db
def test_import_is_idempotent(dicom_dir):
    run_import(str(dicom_dir))
    events = AuditEvent.objects.count()

    out, _err, error = run_import(str(dicom_dir))

    assert out.strip() == "imported 0, already present 3, failed 1"
    assert error is not None and error.returncode == 1
    assert Study.objects.count() == 3
    assert AuditEvent.objects.count() == events


@pytest.mark.django_db
def test_import_of_a_clean_folder_succeeds_as_the_named_account(dicom_dir, personas):
    (dicom_dir / "broken.dcm").unlink()

    out, err, error = run_import(str(dicom_dir), "--account", "ris")

    assert (out.strip(), err, error) == ("imported 3, already present 0, failed 0", "", None)
    assert set(AuditEvent.objects.values_list("actor_username", flat=True)) == {"ris"}


@pytest.mark.django_db
def test_import_errors_never_echo_header_values(tmp_path):
    # CT_small.dcm without its PatientID cannot be stored; its patient's name must not reach the log.
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    del ds.PatientID
    ds.save_as(tmp_path / "ct.dcm")

    _out, err, error = run_import(str(tmp_path))

    assert err.startswith("ct.dcm: missing_field: PatientID is required")
    assert "CompressedSamples" not in err
    assert error is not None and error.returncode == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("account", "reason"), [("nobody", "No active account"), ("alice", "may not write")])
def test_import_refuses_an_account_that_may_not_ingest(dicom_dir, personas, account, reason):
    with pytest.raises(CommandError, match=reason):
        call_command("import_dicom", str(dicom_dir), account=account)
    assert Study.objects.count() == 0


def test_import_refuses_a_path_that_is_not_a_folder(tmp_path):
    with pytest.raises(CommandError, match="not a folder"):
        call_command("import_dicom", str(tmp_path / "missing"))
