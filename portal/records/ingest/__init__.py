"""Ingestion adapters, one module per wire standard, and the raw inbound-message log.

``payloads`` holds the neutral dataclasses every adapter produces; ``hl7`` / ``hl7_ack`` /
``hl7_text`` (HL7 v2 ORU^R01), ``mllp`` (its TCP framing), ``fhir`` / ``fhir_bundle`` /
``fhir_outcome`` (FHIR R4), ``dicom`` / ``dicom_sr`` (DICOM headers and Structured Reports) translate
a wire format into payloads; ``store`` writes one message's payloads in one transaction through
:mod:`portal.records.services`; ``inbound`` keeps every message as received with its outcome.
"""
