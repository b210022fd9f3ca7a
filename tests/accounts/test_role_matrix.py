"""The role matrix: every URL of the project, every persona, the answers each may get.

The list of URLs comes from the URL configuration itself, so a new endpoint without a row in
``RULES`` fails :func:`test_every_url_has_an_access_rule` ("new endpoint without an access rule").

How to add a row: give the URL name a list of probes, e.g.

    "review-thing": [get(allowed=REVIEW_READ, ok={200}), post(allowed=CHAIR, ok={302, 400})],

``allowed`` is the set of personas for whom the request is permitted (they get a code from ``ok``);
everyone else gets a code from ``denied`` (403 by default; 404 where existence is private). The
anonymous visitor gets ``anonymous`` (302 to the login page for pages, 401 for the API). If the path
takes arguments, add a ``KWARGS`` entry building them from the ``world`` fixture (or use MISSING).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.conftest import PERSONAS

ALL = frozenset({*PERSONAS, "root"})  # root holds the admin role
PEOPLE = ALL - {"ris"}  # the integration account is API only: every page refuses it
RADIOLOGISTS = frozenset({"alice", "bob"})
REVIEW_READ = frozenset({"carol", "dana", "lena", "otto", "root"})
ADJUDICATORS = frozenset({"carol", "dana", "root"})
CHAIR = frozenset({"dana", "root"})
AUDIT_STATUS = frozenset({"otto", "lena", "dana", "root"})
PROOFS = frozenset({"otto", "lena", "root"})
HOLD_READ = frozenset({"lena", "otto", "dana", "root"})
LEGAL = frozenset({"lena", "root"})
INGEST = frozenset({"ris", "root"})
READ_ALL = frozenset({"carol", "dana", "lena", "otto", "ris", "root"})
READ_RECORDS = READ_ALL | RADIOLOGISTS
COMPARE = frozenset({"carol", "dana", "alice", "bob", "ris", "root"})
DRAFT = frozenset({"ris", "alice", "bob", "root"})
REINFER_VIEW = frozenset({"carol", "dana", "otto", "root"})
REINFER_RUN = CHAIR
MODELS_VIEW = frozenset({"carol", "dana", "otto", "lena", "root"})
MODELS_MANAGE = CHAIR
SYSTEM_HEALTH = frozenset({"ris", "root"})
INTERFACES = frozenset({"root"})  # the integration admin's pages: interface monitor, clinicians
ADMINS = frozenset({"root"})  # accounts, roles, sessions, API tokens
MISSING = 987_654  # a primary key that exists nowhere

PAGE_ANON = frozenset({302})
API_ANON = frozenset({401})


@dataclasses.dataclass(frozen=True)
class Probe:
    """One request (method + body) and the answers each persona may get."""

    method: str
    allowed: frozenset[str]
    ok: frozenset[int]
    denied: frozenset[int] = frozenset({403})
    anonymous: frozenset[int] = API_ANON
    data: dict[str, Any] | None = None
    special: dict[str, frozenset[int]] = dataclasses.field(default_factory=dict)

    def expected(self, persona: str) -> frozenset[int]:
        """The codes ``persona`` (or "anonymous") may receive."""
        if persona in self.special:
            return self.special[persona]
        if persona == "anonymous":
            return self.anonymous
        return self.ok if persona in self.allowed else self.denied


def get(allowed: frozenset[str], ok: set[int], **kwargs: Any) -> Probe:
    """A GET probe."""
    return Probe("get", frozenset(allowed), frozenset(ok), **_frozen(kwargs))


def post(allowed: frozenset[str], ok: set[int], **kwargs: Any) -> Probe:
    """A POST probe (an empty JSON object unless ``data`` says otherwise)."""
    kwargs.setdefault("data", {})
    return Probe("post", frozenset(allowed), frozenset(ok), **_frozen(kwargs))


def page(allowed: frozenset[str], ok: set[int], method: str = "get", **kwargs: Any) -> Probe:
    """A page probe: anonymous visitors are sent to the login page, the integration account refused."""
    kwargs.setdefault("anonymous", PAGE_ANON)
    if method == "post":
        kwargs.setdefault("data", {})
    return Probe(method, frozenset(allowed), frozenset(ok), **_frozen(kwargs))


def _frozen(kwargs: dict[str, Any]) -> dict[str, Any]:
    for key in ("denied", "anonymous"):
        if key in kwargs:
            kwargs[key] = frozenset(kwargs[key])
    if "special" in kwargs:
        kwargs["special"] = {name: frozenset(codes) for name, codes in kwargs["special"].items()}
    return kwargs


NOT_ALLOWED = {405}

RULES: dict[str, list[Probe]] = {
    # --- Shell and sign-in --------------------------------------------------------------------------
    "home": [page(PEOPLE, {200})],
    "audit-status": [page(AUDIT_STATUS, {200}), page(AUDIT_STATUS, {302}, method="post")],
    "audit-verification-job": [page(AUDIT_STATUS, {404})],
    "audit-proofs": [page(AUDIT_STATUS, {200, 503})],  # 503 where this server holds no signing key
    "audit-proof-download": [page(AUDIT_STATUS, {400})],  # no event or study chosen
    # The public key is public by design: anyone signed in (503 where this server holds no key).
    "audit-public-key": [page(PEOPLE, {200, 503})],
    "audit-public-key-pem": [page(PEOPLE, {200, 503})],
    "login": [get(ALL, {200}, anonymous={200}), post(ALL, {200}, anonymous={200})],
    "logout": [get(ALL, NOT_ALLOWED, anonymous=NOT_ALLOWED), post(ALL, {200}, anonymous={200})],
    "otp-setup": [page(ALL, {200}), page(ALL, {400}, method="post")],  # no code: refused, nothing confirmed
    # Nothing pending: straight on to the landing page.
    "otp-verify": [page(ALL, {302}), page(ALL, {302}, method="post")],
    "session-keepalive": [post(ALL, {204}), get(ALL, NOT_ALLOWED, anonymous=NOT_ALLOWED)],
    "session-status": [get(ALL, {200}, anonymous={200})],
    "system-health": [page(frozenset({"root"}), {200})],
    "favicon": [get(PEOPLE, {301}, anonymous={301})],
    # Single sign-on: not configured in this matrix, so its URLs do not exist for anyone.
    "oidc_authentication_init": [get(ALL, {404}, anonymous={404})],
    "oidc_authentication_callback": [get(ALL, {404}, anonymous={404})],
    "oidc_logout": [post(ALL, {404}, anonymous={404})],
    # --- Administration (admin role) ----------------------------------------------------------------
    "administration-users": [page(ADMINS, {200})],
    "administration-account-new": [page(ADMINS, {200}), page(ADMINS, {400}, method="post")],
    "administration-account": [page(ADMINS, {404})],
    "administration-account-roles": [page(ADMINS, {404}, method="post")],
    "administration-account-deactivate": [page(ADMINS, {404}, method="post")],
    "administration-account-reactivate": [page(ADMINS, {404}, method="post")],
    "administration-token-create": [page(ADMINS, {404}, method="post")],
    "administration-session-end": [page(ADMINS, {404}, method="post")],
    "administration-sessions": [page(ADMINS, {200})],
    "administration-token-rotate": [page(ADMINS, {404}, method="post")],
    "administration-token-revoke": [page(ADMINS, {404}, method="post")],
    # --- Review pages -------------------------------------------------------------------------------
    "review-queue": [page(REVIEW_READ, {200})],
    "review-assign": [page(CHAIR, {302, 400}, method="post"), page(PEOPLE, NOT_ALLOWED)],
    # A reviewer's own open cases: a redirect to the queue filtered to their assignments.
    "review-my-assigned": [page(ADJUDICATORS, {302}), page(PEOPLE, NOT_ALLOWED, method="post")],
    "review-campaigns": [page(CHAIR, {200}), page(CHAIR, {200, 400}, method="post")],
    "review-case": [
        # alice signed the case; bob is another radiologist: for him the case does not exist.
        page(REVIEW_READ | {"alice"}, {200}, denied={403}, special={"bob": frozenset({404})})
    ],
    "review-adjudicate": [
        page(ADJUDICATORS, {400}, method="post", special={"bob": frozenset({404})}),
        page(PEOPLE, NOT_ALLOWED),
    ],
    "review-dashboard": [page(REVIEW_READ, {200})],
    "review-feedback": [page(RADIOLOGISTS, {200})],
    "review-feedback-ack": [
        # The feedback is alice's: for bob it does not exist.
        page(frozenset({"alice"}), {200, 302}, method="post", special={"bob": frozenset({404})}),
    ],
    "review-performance": [page(CHAIR, {200})],
    "review-performance-csv": [page(CHAIR, {200})],
    "review-performance-pdf": [page(CHAIR, {200})],
    # --- Peer learning: inbox (who gets notifications), teaching sets and assignment rules (chair) ---
    "peer-inbox": [page(RADIOLOGISTS | ADJUDICATORS, {200})],
    # The world's feedback notifies alice: for anyone else the notification does not exist.
    "peer-notification-open": [
        page(
            frozenset({"alice"}),
            {302},
            method="post",
            special={p: frozenset({404}) for p in ("bob", "carol", "dana", "root")},
        ),
        page(PEOPLE, NOT_ALLOWED),
    ],
    "peer-inbox-read-all": [
        page(RADIOLOGISTS | ADJUDICATORS, {302}, method="post"),
        page(PEOPLE, NOT_ALLOWED),
    ],
    "peer-teaching-sets": [page(CHAIR, {200}), page(CHAIR, {400}, method="post")],
    "peer-teaching-set": [page(CHAIR, {404}), page(CHAIR, {404}, method="post")],
    "peer-teaching-case": [page(CHAIR, {404}), page(CHAIR, {404}, method="post")],
    "peer-teaching-case-remove": [page(CHAIR, {404}, method="post"), page(PEOPLE, NOT_ALLOWED)],
    "peer-teaching-pdf": [page(CHAIR, {404})],
    "peer-teaching-bundle": [page(CHAIR, {404})],
    "peer-rules": [page(CHAIR, {200}), page(CHAIR, {400}, method="post")],
    "peer-rule-toggle": [page(CHAIR, {404}, method="post"), page(PEOPLE, NOT_ALLOWED)],
    "peer-rules-run": [page(CHAIR, {400}, method="post"), page(PEOPLE, NOT_ALLOWED)],
    # --- Operations pages: re-inference runs, models, legal -----------------------------------------
    "reinference-runs": [page(REINFER_VIEW, {200}), page(REINFER_RUN, {400}, method="post")],
    "reinference-run": [page(REINFER_VIEW, {404})],
    "reinference-run-progress": [page(REINFER_VIEW, {404})],
    "reinference-run-cancel-page": [page(REINFER_RUN, {404}, method="post"), page(PEOPLE, NOT_ALLOWED)],
    "models": [page(MODELS_VIEW, {200})],
    "model": [page(MODELS_VIEW, {404})],
    "model-activate": [page(MODELS_MANAGE, {404}, method="post"), page(PEOPLE, NOT_ALLOWED)],
    "legal": [page(LEGAL, {200})],
    "legal-search": [page(LEGAL, {400}, method="post"), page(PEOPLE, NOT_ALLOWED)],
    "legal-hold-place": [page(LEGAL, {400}, method="post"), page(PEOPLE, NOT_ALLOWED)],
    "legal-hold-release": [page(LEGAL, {400}, method="post"), page(PEOPLE, NOT_ALLOWED)],
    "legal-exports": [page(LEGAL, {200})],
    "legal-export-request": [page(LEGAL, {400}, method="post"), page(PEOPLE, NOT_ALLOWED)],
    "legal-export-cancel": [page(LEGAL, {404}, method="post"), page(PEOPLE, NOT_ALLOWED)],
    # --- Records API --------------------------------------------------------------------------------
    "api-schema": [get(ALL, {200})],
    "api-health": [get(ALL, {200}, anonymous={200})],
    # No worker runs beside the tests: the report says so with 503 (200 when everything is up).
    "api-system-health": [get(SYSTEM_HEALTH, {200, 503})],
    "api-compare": [post(COMPARE, {400}), get(COMPARE, NOT_ALLOWED)],
    "api-studies": [get(READ_RECORDS, {200}), post(INGEST, {400})],
    "api-study": [get(READ_ALL | {"alice"}, {200}, special={"bob": frozenset({404})})],
    "api-ai-outputs": [get(READ_RECORDS, {200}), post(INGEST, {400})],
    "api-ai-output": [get(READ_ALL | {"alice"}, {200}, special={"bob": frozenset({404})})],
    "api-signed-reports": [get(READ_RECORDS, {200}), post(INGEST, {400})],
    "api-signed-report": [get(READ_ALL | {"alice"}, {200}, special={"bob": frozenset({404})})],
    "api-fhir-diagnosticreport": [post(INGEST, {400})],
    "api-hl7": [post(INGEST, {400})],
    "api-fhir-patient": [post(INGEST, {400})],
    "api-fhir-practitioner": [post(INGEST, {400})],
    "api-fhir-bundle": [post(INGEST, {400})],
    "records-interfaces": [page(INTERFACES, {200})],
    "records-interface-replay": [page(INTERFACES, {404}, method="post")],
    "records-clinicians": [page(INTERFACES, {200})],
    "records-clinician-link": [page(INTERFACES, {404}, method="post")],
    "api-dicom": [post(INGEST, {400, 415})],  # multipart expected: JSON is an unsupported media type
    "api-drafts": [post(DRAFT, {400})],
    # --- Legal and audit API ------------------------------------------------------------------------
    "api-legal-holds": [get(HOLD_READ, {200}), post(LEGAL, {400})],
    "api-legal-hold-release": [post(LEGAL, {400}), get(LEGAL, NOT_ALLOWED)],
    "api-legal-exports": [get(LEGAL, {200}), post(LEGAL, {400})],
    "api-legal-export": [get(LEGAL, {404})],
    "api-legal-export-cancel": [post(LEGAL, {404})],
    "api-legal-export-download": [get(LEGAL, {404})],
    "api-audit-checkpoints": [get(PROOFS, {200})],
    "api-audit-inclusion-proof": [get(PROOFS, {400})],
    "api-audit-consistency-proof": [get(PROOFS, {400})],
    # --- Re-inference API ---------------------------------------------------------------------------
    "api-reinference-runs": [get(REINFER_VIEW, {200}), post(REINFER_RUN, {400})],
    "api-reinference-run": [get(REINFER_VIEW, {404})],
    "api-reinference-run-cancel": [post(REINFER_RUN, {404})],
    "api-reinference-run-results": [get(REINFER_VIEW, {404})],
    "api-reinference-run-summary": [get(REINFER_VIEW, {404})],
}

KWARGS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "review-case": lambda world: {"pk": world["comparison"].pk},
    "review-adjudicate": lambda world: {"pk": world["comparison"].pk},
    "review-feedback-ack": lambda world: {"pk": world["feedback"].pk},
    "peer-notification-open": lambda world: {"pk": world["feedback"].notification.pk},
    "api-study": lambda world: {"pk": world["study"].pk},
    "api-ai-output": lambda world: {"pk": world["ai_output"].pk},
    "api-signed-report": lambda world: {"pk": world["report"].pk},
    "api-legal-hold-release": lambda world: {"pk": world["hold"].pk},
    "legal-hold-release": lambda world: {"pk": world["hold"].pk},
}


def _url_names(resolver: URLResolver | None = None, namespace: str = "") -> list[tuple[str, URLPattern]]:
    """Every named URL pattern under ``resolver`` (the project's root by default), with its namespace."""
    resolver = resolver or get_resolver()
    found = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            found.extend(_url_names(entry, inner))
        else:
            found.append((f"{namespace}{entry.name or '<unnamed ' + str(entry.pattern) + '>'}", entry))
    return found


def test_every_url_has_an_access_rule():
    names = {name for name, _ in _url_names()}

    missing = sorted(names - set(RULES))
    stale = sorted(set(RULES) - names)

    assert not missing, f"new endpoint without an access rule (add it to RULES here): {missing}"
    assert not stale, f"rules for URLs that no longer exist: {stale}"


def test_every_path_argument_has_a_value():
    for name, pattern in _url_names():
        if pattern.pattern.converters and name in RULES:
            assert name in KWARGS or _defaults_to_missing(name), f"{name}: add a KWARGS entry"


def _defaults_to_missing(name: str) -> bool:
    """URLs whose objects the world does not build: they are probed with a key that exists nowhere."""
    return all(code in {404, 405} for probe in RULES[name] for code in probe.ok)


@pytest.fixture
def world(personas, monkeypatch) -> dict[str, Any]:
    """One case of alice's, with its study, AI draft, signed report, comparison, review and feedback."""
    from audit import log as audit
    from audit import tasks as audit_tasks
    from portal.legal import services as legal
    from portal.records.models import AIOutput, ModelVersion, Patient, SignedReport, Study, sha256_text
    from portal.review import services as review

    monkeypatch.setattr(audit_tasks.verify_log, "delay", lambda *a, **k: None)
    root = personas["eve"].__class__.objects.create_user(username="root")
    root.groups.add(Group.objects.get_or_create(name="admin")[0])
    personas["root"] = root
    when = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
    model = ModelVersion.objects.create(name="matrix-model", version="1", artifact_sha256="a" * 64)
    patient = Patient.objects.create(mrn="MRN-M1", family_name="Matrix", given_name="Ada")
    study = Study.objects.create(
        accession_number="ACC-M1", patient=patient, modality="CR", specialty="chest", study_datetime=when
    )
    draft = "FINDINGS:\nSmall left pleural effusion.\n\nIMPRESSION:\nSmall left pleural effusion."
    signed = "FINDINGS:\nNo pleural effusion. Large right pneumothorax.\n\nIMPRESSION:\nRight pneumothorax."
    ai_output = AIOutput.objects.create(
        study=study, kind="report_draft", model_version=model, inputs={"indication": "Cough"},
        generation_settings={}, text=draft, text_sha256=sha256_text(draft), payload_sha256="b" * 64,
        generated_at=when,
    )  # fmt: skip
    report = SignedReport.objects.create(
        study=study, radiologist=personas["alice"], sections={"findings": signed}, text=signed,
        text_sha256=sha256_text(signed), payload_sha256="c" * 64, signed_at=when + dt.timedelta(hours=1),
    )  # fmt: skip
    comparison, _ = review.comparison_create(candidate=ai_output, reference=report)
    context = audit.AuditContext(channel="test")
    discrepancy_ids = comparison.discrepancies.values_list("pk", flat=True)
    verdicts = {pk: review.VerdictInput(verdict="agree", correct_side="ai_draft") for pk in discrepancy_ids}
    submitted = review.review_submit(
        comparison=comparison, reviewer=personas["carol"], radpeer="2a", comment="Missed pneumothorax.",
        verdicts=verdicts, feedback_message="Please look again.", context=context,
    )  # fmt: skip
    hold = legal.legal_hold_place(
        actor=personas["lena"], context=context, matter_reference="M-1", reason="Litigation",
        accession_numbers=["ACC-M1"],
    )  # fmt: skip
    return {
        "personas": personas,
        "study": study,
        "ai_output": ai_output,
        "report": report,
        "comparison": comparison,
        "feedback": submitted.feedback,
        "hold": hold,
    }


def _path(name: str, world: dict[str, Any]) -> str:
    pattern = dict(_url_names())[name]
    if not pattern.pattern.converters:
        return reverse(name)
    kwargs = KWARGS[name](world) if name in KWARGS else dict.fromkeys(pattern.pattern.converters, MISSING)
    return reverse(name, kwargs=kwargs)


def _client(persona: str, world: dict[str, Any]) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(world["personas"][persona])
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(RULES))
def test_role_matrix(name, world):
    path = _path(name, world)
    wrong = []
    for probe in RULES[name]:
        for persona in [*sorted(ALL), "anonymous"]:
            client = _client(persona, world)
            if probe.method == "post":
                response = client.post(path, probe.data or {}, content_type="application/json")
            else:
                response = client.get(path)
            if response.status_code not in probe.expected(persona):
                wrong.append(f"{probe.method.upper()} {path} as {persona}: {response.status_code}")

    assert not wrong, "unexpected answers:\n" + "\n".join(wrong)
