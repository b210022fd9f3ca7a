"""The standards half of the ingestion benchmark (imported by bench/ingest.py).

Builds FHIR transaction Bundles and HL7 ORU^R01 messages from the same synthetic pairs the REST
measurement sends, drives them through gunicorn (Bundles) and the MLLP listener (one persistent
connection), counts the SQL statements one request of each kind costs, and profiles where the time
of HL7 requests goes.
"""

from __future__ import annotations

import base64
import cProfile
import http.client
import io
import json
import pstats
import socket
import threading
import time
from collections.abc import Callable

import psutil

from portal.records.ingest.fhir_ai import AI_MODEL_URL
from portal.records.ingest.hl7_text import escape
from portal.records.ingest.mllp import MllpDecoder, frame

ACSN = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]}
USERNAME = "urn:concordance:username"


def _text(value: str) -> list[dict]:
    return [{"contentType": "text/plain", "data": base64.b64encode(value.encode()).decode()}]


def _fhir_entries(study: dict, output: dict, report: dict, index: int) -> list[dict]:
    patient_url = f"urn:uuid:00000000-0000-4000-8000-{index:012d}"
    patient = study["patient"]
    common = {
        "identifier": [{"type": ACSN, "value": study["accession_number"]}],
        "code": {"text": study["description"] or "Imaging study"},
        "subject": {"reference": patient_url},
        "effectiveDateTime": study["study_datetime"],
    }
    draft = {
        "resourceType": "DiagnosticReport",
        "status": "preliminary",
        **common,
        "issued": output["generated_at"],
        "extension": [
            {"url": AI_MODEL_URL, "valueString": f"{output['model_name']}|{output['model_version']}"}
        ],
        "presentedForm": _text(output["text"]),
    }
    final = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        **common,
        "issued": report["signed_at"],
        "resultsInterpreter": [{"identifier": {"system": USERNAME, "value": report["radiologist"]}}],
        "presentedForm": _text(report["text"]),
    }
    fhir_patient = {
        "resourceType": "Patient",
        "identifier": [{"value": patient["mrn"]}],
        "name": [{"family": patient["family_name"], "given": [patient["given_name"]]}],
        "birthDate": patient["birth_date"],
    }
    return [
        {"fullUrl": patient_url, "resource": fhir_patient, "request": {"method": "POST", "url": "Patient"}},
        {"resource": draft, "request": {"method": "POST", "url": "DiagnosticReport"}},
        {"resource": final, "request": {"method": "POST", "url": "DiagnosticReport"}},
    ]


def fhir_bundles(bodies: list[tuple[dict, dict, dict]], reports_per_bundle: int) -> list[dict]:
    """Transaction Bundles of ``reports_per_bundle`` DiagnosticReports (a draft and a final per pair)."""
    pairs_per_bundle = max(1, reports_per_bundle // 2)
    bundles = []
    for start in range(0, len(bodies), pairs_per_bundle):
        entries = []
        for index, (study, output, report) in enumerate(bodies[start : start + pairs_per_bundle], start):
            entries += _fhir_entries(study, output, report, index)
        bundles.append({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    return bundles


def _ts(iso: str) -> str:
    return iso.replace("-", "").replace(":", "").replace("T", "")[:14]


def hl7_messages(bodies: list[tuple[dict, dict, dict]]) -> list[bytes]:
    """Two ORU^R01 per pair: the AI draft (P with a ZAI segment) and the signed final report (F)."""
    messages = []
    for n, (study, output, report) in enumerate(bodies):
        p = study["patient"]
        head = [
            f"PID|1||{p['mrn']}^^^BENCH^MR||{p['family_name']}^{p['given_name']}||"
            f"{(p['birth_date'] or '').replace('-', '')}|{p['sex']}",
        ]
        obr = f"OBR|1||{study['accession_number']}|^{study['description']}|||{_ts(study['study_datetime'])}"
        for kind, body in (("P", output), ("F", report)):
            sender = "AI" if kind == "P" else "RIS"
            sent_at = _ts(study["study_datetime"])
            msh = f"MSH|^~\\&|{sender}|BENCH|CONCORDANCE|QA|{sent_at}||ORU^R01|B{n}{kind}|P|2.5.1"
            when = _ts(output["generated_at"] if kind == "P" else report["signed_at"])
            signer = report["radiologist"] if kind == "F" else ""
            segments = [msh, *head, f"{obr}|||||||||||||||{when}|||{kind}|||||||{signer}"]
            if kind == "P":
                segments.append(f"ZAI|{output['model_name']}|{output['model_version']}|report_draft|{when}")
            lines = body["text"].split("\n")
            segments += [f"OBX|{i}|TX|RPT||{escape(line)}||||||{kind}" for i, line in enumerate(lines, 1)]
            messages.append("\r".join(segments).encode("utf-8") + b"\r")
    return messages


def drive_bundles(port: int, token: str, bundles: list[dict], clients: int) -> tuple[float, list[float], int]:
    """POST every Bundle to /api/v1/fhir from ``clients`` keep-alive connections."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def client(chunk: list[dict]) -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/fhir+json"}
        for bundle in chunk:
            started = time.perf_counter()
            conn.request("POST", "/api/v1/fhir", json.dumps(bundle), headers)
            response = conn.getresponse()
            body = response.read()
            # 201 Created, or 200 OK for a patient already known (the department's patients recur).
            ok = response.status == 200 and all(
                e["response"]["status"][:3] in ("200", "201") for e in json.loads(body)["entry"]
            )
            with lock:
                latencies.append(time.perf_counter() - started)
                errors += 0 if ok else 1

    elapsed = run_clients(client, [bundles[i::clients] for i in range(clients)])
    return elapsed, latencies, errors


def warm_up(port: int, clients: int, requests: int = 8) -> None:
    """A few requests from each client at once, so that every worker has loaded the URL
    configuration and opened its database connection before CPU is counted (seconds each)."""

    def client(_: list) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(requests):
            conn.request("GET", "/health/")
            conn.getresponse().read()

    run_clients(client, [[] for _ in range(clients)])


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants so far (gunicorn's workers)."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def run_clients(client: Callable[[list], None], chunks: list[list]) -> float:
    """Run ``client(chunk)`` in one thread per chunk; the seconds until the last one finished."""
    threads = [threading.Thread(target=client, args=(chunk,)) for chunk in chunks]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def drive_mllp(port: int, messages: list[bytes]) -> tuple[float, list[float], int]:
    """Send every message over ONE persistent MLLP connection, each after the previous ACK."""
    latencies: list[float] = []
    errors = 0
    decoder = MllpDecoder()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        started = time.perf_counter()
        for message in messages:
            sent = time.perf_counter()
            sock.sendall(frame(message))
            replies: list[bytes] = []
            while not replies:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("the MLLP listener closed the connection")
                replies = decoder.feed(data)
            latencies.append(time.perf_counter() - sent)
            errors += 0 if b"MSA|AA" in replies[0] else 1
        return time.perf_counter() - started, latencies, errors


def sql_counts(token: str, bodies: list[tuple[dict, dict, dict]], bundle: dict) -> dict[str, int]:
    """SQL statements of one request of each kind, in-process through Django's test client."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")
    study, output, report = bodies[0]
    requests = [
        ("REST study", "/api/v1/studies", json.dumps(study), "application/json"),
        ("REST AI output", "/api/v1/ai-outputs", json.dumps(output), "application/json"),
        ("REST signed report", "/api/v1/signed-reports", json.dumps(report), "application/json"),
        ("FHIR transaction Bundle", "/api/v1/fhir", json.dumps(bundle), "application/fhir+json"),
    ]
    counts = {}
    for label, path, body, content_type in requests:
        with CaptureQueriesContext(connection) as captured:
            response = client.post(path, body, content_type=content_type)
        counts[f"{label} ({response.status_code})"] = len(captured.captured_queries)
    for label, message in (("HL7 AI draft", 0), ("HL7 final report", 1)):
        with CaptureQueriesContext(connection) as captured:
            client.post("/api/v1/hl7", hl7_messages(bodies[1:2])[message], content_type="text/plain")
        counts[label] = len(captured.captured_queries)
    return counts


def profile_hl7(token: str, messages: list[bytes], top: int = 30) -> str:
    """cProfile of HL7 requests in-process: the functions with the most cumulative time."""
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")
    profiler = cProfile.Profile()
    profiler.enable()
    for message in messages:
        client.post("/api/v1/hl7", message, content_type="text/plain")
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
    stats.print_stats(top)
    return out.getvalue()
