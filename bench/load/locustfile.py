"""Mixed traffic for the load run (driven by bench/load/run.py; see docs/benchmarks.md).

Three kinds of users, by weight: the RIS sends report pairs through REST, FHIR and HL7 (a study,
then its AI draft, then the signed report); QA reviewers page through the queue and open cases;
the chair looks at the dashboard. Tokens and session cookies come from the environment
(``LOAD_TOKENS``, ``LOAD_SESSIONS``, JSON) that run.py prepares; every request is named by endpoint so
locust's statistics are per endpoint.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import os
import random
import re
import secrets
from pathlib import Path

from locust import HttpUser, between, task

ROOT = Path(__file__).resolve().parents[2]
TOKENS: dict[str, str] = json.loads(os.environ.get("LOAD_TOKENS", "{}"))
SESSIONS: dict[str, str] = json.loads(os.environ.get("LOAD_SESSIONS", "{}"))
FHIR_FINAL = json.loads(
    (ROOT / "tests" / "adapters" / "data" / "fhir_final.json").read_text(encoding="utf-8")
)
RUN_TAG = secrets.token_hex(3).upper()  # one locust process: unique accessions across repeated runs
_numbers = itertools.count(1)
CASE_LINK = re.compile(r'href="(/review/cases/\d+/[^"]*)"')
NEXT_LINK = re.compile(r'id="queue-next-page"[^>]*href="([^"]+)"|href="([^"]+)"[^>]*id="queue-next-page"')

DRAFT = (
    "FINDINGS:\nSmall left pleural effusion. No pneumothorax.\n\nIMPRESSION:\nSmall left pleural effusion."
)
SIGNED = "No pleural effusion. Large right pneumothorax."


def _ids() -> tuple[str, str, str]:
    n = next(_numbers)
    return f"L{RUN_TAG}{n:07d}", f"MRNL{RUN_TAG}{n:07d}", f"1.2.826.0.1.3680043.10.999.{int(RUN_TAG, 16)}.{n}"


def _draft(accession: str) -> dict:
    return {
        "accession_number": accession,
        "kind": "report_draft",
        "model_name": "concordance-chest",
        "model_version": "1.0.0",
        "inputs": {
            "indication": "Cough.",
            "findings": [{"concept": "pleural_effusion", "laterality": "left"}],
        },
        "generation_settings": {"decoding": "greedy", "max_new_tokens": 256},
        "text": DRAFT,
        "generated_at": "2026-03-04T10:05:00Z",
    }


class Ris(HttpUser):
    """The RIS integration: one report pair per task, through one of the three standards."""

    weight = 3
    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Token {TOKENS['ris']}"

    def _post_json(self, url: str, body: dict, name: str, content_type: str = "application/json") -> bool:
        with self.client.post(
            url, data=json.dumps(body), headers={"Content-Type": content_type}, name=name, catch_response=True
        ) as response:
            if response.status_code not in (200, 201):
                response.failure(f"{response.status_code}")
                return False
            return True

    @task(2)
    def rest_pair(self) -> None:
        accession, mrn, uid = _ids()
        study = {
            "study_instance_uid": uid,
            "accession_number": accession,
            "modality": "CR",
            "body_part": "CHEST",
            "specialty": "chest",
            "study_datetime": "2026-03-04T10:00:00Z",
            "description": "XR CHEST 2 VIEWS",
            "patient": {
                "mrn": mrn,
                "family_name": "Loadtest",
                "given_name": "Ada",
                "birth_date": "1960-02-03",
                "sex": "F",
            },
        }
        if not self._post_json("/api/v1/studies", study, "REST POST studies"):
            return
        if not self._post_json("/api/v1/ai-outputs", _draft(accession), "REST POST ai-outputs"):
            return
        report = {
            "accession_number": accession,
            "radiologist": "alice",
            "status": "final",
            "sections": {"findings": SIGNED, "impression": "Pneumothorax."},
            "signed_at": "2026-03-04T11:00:00Z",
        }
        self._post_json("/api/v1/signed-reports", report, "REST POST signed-reports")

    @task(1)
    def fhir_pair(self) -> None:
        accession, mrn, uid = _ids()
        body = copy.deepcopy(FHIR_FINAL)
        body["identifier"][0]["value"] = accession
        body["contained"][0]["identifier"][1]["value"] = mrn
        body["imagingStudy"][0]["identifier"]["value"] = f"urn:oid:{uid}"
        body["resultsInterpreter"] = [
            {"identifier": {"system": "urn:concordance:username", "value": "alice"}}
        ]
        text = base64.b64encode(f"FINDINGS: {SIGNED}".encode()).decode("ascii")
        body["presentedForm"] = [{"contentType": "text/plain; charset=utf-8", "data": text}]
        if self._post_json(
            "/api/v1/fhir/DiagnosticReport",
            body,
            "FHIR POST DiagnosticReport",
            content_type="application/fhir+json",
        ):
            self._post_json("/api/v1/ai-outputs", _draft(accession), "REST POST ai-outputs")

    @task(1)
    def hl7_pair(self) -> None:
        accession, mrn, uid = _ids()
        message = (
            "\r".join(
                [
                    f"MSH|^~\\&|RADRIS|GENHOSP|CONCORDANCE|QA|20240301101500||ORU^R01|C{accession}|P|2.5.1",
                    f"PID|1||{mrn}^^^GENHOSP^MR||Loadtest^Ada||19700215|F",
                    f"OBR|1|PL1|{accession}|71250^CT CHEST WITHOUT CONTRAST^CPT4|||202403010930"
                    "|||||||||1234^Welby^Marcus||||||202403011014|||F|||||||alice",
                    f"OBX|1|TX|RPT^Report^L||FINDINGS: {SIGNED}||||||F",
                ]
            )
            + "\r"
        )
        with self.client.post(
            "/api/v1/hl7",
            data=message.encode(),
            name="HL7 POST ORU^R01",
            headers={"Content-Type": "x-application/hl7-v2+er7"},
            catch_response=True,
        ) as response:
            if response.status_code != 200 or "MSA|AA" not in response.text:
                response.failure(f"{response.status_code} {response.text[:80]!r}")
                return
        self._post_json("/api/v1/ai-outputs", _draft(accession), "REST POST ai-outputs")


class Reviewer(HttpUser):
    """A QA reviewer: the queue's first pages, then one of the cases on them."""

    weight = 2
    wait_time = between(1.0, 3.0)

    def on_start(self) -> None:
        self.client.cookies.set("sessionid", SESSIONS[random.choice(["carol", "dana"])])

    @task
    def page_and_open(self) -> None:
        response = self.client.get("/review/queue/", name="page GET queue (first)")
        html, cases = response.text, CASE_LINK.findall(response.text)
        for _ in range(random.randint(0, 3)):
            match = NEXT_LINK.search(html)
            if not match:
                break
            url = (match.group(1) or match.group(2)).replace("&amp;", "&")
            response = self.client.get(url, name="page GET queue (next, keyset)")
            html = response.text
            cases += CASE_LINK.findall(html)
        if cases:
            case = random.choice(cases).replace("&amp;", "&")
            self.client.get(case, name="page GET case")


class Chair(HttpUser):
    """The QA chair glancing at the dashboard and the home page."""

    weight = 1
    wait_time = between(2.0, 5.0)

    def on_start(self) -> None:
        self.client.cookies.set("sessionid", SESSIONS["dana"])

    @task(2)
    def dashboard(self) -> None:
        self.client.get("/review/dashboard/", name="page GET dashboard")

    @task(1)
    def home(self) -> None:
        self.client.get("/", name="page GET home")
