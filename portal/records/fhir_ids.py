"""FHIR logical ids for patients and clinicians: how clients reference what they posted earlier.

A Patient or Practitioner posted to the FHIR endpoints gets a logical id (a random one for a POST,
the client's own for a ``PUT Patient/123`` inside a Bundle); later reports may then name their subject
or signer by ``"Patient/<id>"`` / ``"Practitioner/<id>"`` alone. Assigning an id is idempotent: the
same patient posted twice keeps the id it got first; one id never names two patients.
"""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from audit import log as audit
from portal.core.errors import RecordConflict
from portal.records.models import Clinician, FhirPatientId, Patient
from portal.records.units import ingest_unit, remember, remembered


@ingest_unit()
def patient_fhir_id_assign(
    *, patient: Patient, logical_id: str, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> tuple[str, bool]:
    """The patient's logical id (``logical_id`` when the client chose one); True when newly assigned."""
    first_read = not logical_id  # below: the patient's first id was looked up and it had none
    if logical_id:
        existing = FhirPatientId.objects.filter(logical_id=logical_id).first()
        if existing is not None:
            if existing.patient_id != patient.pk:
                raise RecordConflict("This Patient id already names another patient.", field="Patient.id")
            return logical_id, False
    else:
        first = remembered(
            ("fhir_patient_id", patient.pk),
            lambda: FhirPatientId.objects.filter(patient=patient).order_by("pk").first(),
        )
        if first is not None:
            return first.logical_id, False
        logical_id = uuid.uuid4().hex
    try:
        with transaction.atomic():
            assigned = FhirPatientId.objects.create(logical_id=logical_id, patient=patient)
    except IntegrityError:
        raise RecordConflict("This Patient id was assigned concurrently.", field="Patient.id") from None
    if first_read:
        remember(("fhir_patient_id", patient.pk), assigned)  # it had none: this is its first id
    audit.record(
        "patient.fhir_id",
        actor=actor,
        context=context,
        object_type="patient",
        object_id=patient.pk,
        patient_id=patient.pk,
    )
    return logical_id, True


@ingest_unit()
def clinician_fhir_id_assign(
    *, clinician: Clinician, logical_id: str, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> tuple[str, bool]:
    """The clinician's Practitioner id (``logical_id`` when the client chose one); True when new."""
    if clinician.fhir_id:
        if logical_id and logical_id != clinician.fhir_id:
            raise RecordConflict("This Practitioner already has another id.", field="Practitioner.id")
        return clinician.fhir_id, False
    logical_id = logical_id or uuid.uuid4().hex
    if Clinician.objects.filter(fhir_id=logical_id).exclude(pk=clinician.pk).exists():
        raise RecordConflict("This Practitioner id already names another clinician.", field="Practitioner.id")
    clinician.fhir_id = logical_id
    clinician.save(update_fields=["fhir_id"])
    audit.record(
        "clinician.fhir_id", actor=actor, context=context, object_type="clinician", object_id=clinician.pk
    )
    return logical_id, True
