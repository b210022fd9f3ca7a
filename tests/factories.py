"""Valid request bodies for the REST API, to be varied by each test."""

from __future__ import annotations


def study_json(accession: str = "ACC1001", mrn: str = "MRN0001", **overrides) -> dict:
    """A valid study payload for the REST API."""
    body = {
        "study_instance_uid": "1.2.826.0.1.3680043.10.1234.1001",
        "accession_number": accession,
        "patient": {
            "mrn": mrn,
            "family_name": "Testperson",
            "given_name": "Ada",
            "birth_date": "1960-02-03",
            "sex": "F",
        },
        "modality": "CR",
        "body_part": "CHEST",
        "specialty": "chest",
        "study_datetime": "2026-03-04T10:00:00Z",
        "description": "XR CHEST 2 VIEWS",
        "priority": "routine",
        "referring_physician": "Grey, Meredith",
    }
    body.update(overrides)
    return body


def ai_output_json(accession: str = "ACC1001", **overrides) -> dict:
    """A valid AI output payload for the REST API."""
    body = {
        "accession_number": accession,
        "kind": "report_draft",
        "model_name": "concordance-chest",
        "model_version": "1.0.0",
        "inputs": {
            "indication": "Cough.",
            "findings": [{"concept": "pleural_effusion", "laterality": "left"}],
        },
        "generation_settings": {"decoding": "greedy", "max_new_tokens": 256},
        "text": "FINDINGS:\nSmall left pleural effusion.\n\nIMPRESSION:\nSmall left pleural effusion.",
        "prompt_tokens": 41,
        "completion_tokens": 17,
        "latency_ms": 38.5,
        "generated_at": "2026-03-04T10:05:00Z",
    }
    body.update(overrides)
    return body


def signed_report_json(accession: str = "ACC1001", radiologist: str = "alice", **overrides) -> dict:
    """A valid signed report payload for the REST API."""
    body = {
        "accession_number": accession,
        "radiologist": radiologist,
        "sections": {
            "indication": "Cough.",
            "findings": "Small left pleural effusion.",
            "impression": "Small left pleural effusion.",
        },
        "signed_at": "2026-03-04T11:00:00Z",
        "status": "final",
    }
    body.update(overrides)
    return body
