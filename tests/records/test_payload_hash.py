"""payload_hash: the digest stored with every AI output and signed report must never change for the
same payload (an identical resend is recognised by it), whatever the implementation."""

from __future__ import annotations

import dataclasses
import hashlib

from audit.canonical import canonical_json
from portal.demo.management.commands.seed_demo import study_pairs
from portal.demo.synthetic import generate_department
from portal.records.ingest.payloads import ClinicianPayload
from portal.records.services import payload_hash, to_jsonable


def _asdict_hash(payload) -> str:  # noqa: ANN001
    """The original definition: dataclasses.asdict, fields marked omit_when_none left out while None."""
    data = dataclasses.asdict(payload)
    for item in dataclasses.fields(payload):
        if item.metadata.get("omit_when_none") and data.get(item.name) is None:
            del data[item.name]
    return hashlib.sha256(canonical_json(to_jsonable(data))).hexdigest()


def test_the_digest_is_the_one_asdict_gave():
    signer = ClinicianPayload(authority="RIS", identifier="16621", family_name="Orange", given_name="Panda")
    checked = 0
    for pair in study_pairs(generate_department(studies=40, seed=3)):
        for payload in (pair.study, pair.ai_output, pair.signed_report):
            assert payload_hash(payload) == _asdict_hash(payload)
            checked += 1
        with_signer = dataclasses.replace(pair.signed_report, signer=signer)
        assert payload_hash(with_signer) == _asdict_hash(with_signer)
        assert payload_hash(with_signer) != payload_hash(pair.signed_report)
    assert checked == 120
