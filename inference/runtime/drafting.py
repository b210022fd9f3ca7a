"""Live drafting: run the local model for one study now and store the draft with its full provenance.

The model runs OUTSIDE any database transaction (a transaction must not stay open for the length of a
generation); the draft is then stored through :func:`portal.records.services.ai_output_ingest`, the same
service every ingestion path uses, which writes the AI output and its audit event in one transaction
and queues the comparison with the signed report. What is stored as ``inputs`` is exactly what the
model saw (the caller's inputs completed from the study), so re-inference can reproduce it byte for byte.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from audit import log as audit
from inference import registry, runtime
from inference.prompts import PromptError, build_prompt
from portal.core.errors import InvalidRecord, RecordError, RecordNotFound
from portal.records import services
from portal.records.ingest.payloads import AIOutputPayload
from portal.records.models import AIOutput, AIOutputKind, ModelStatus, ModelVersion, Study

logger = logging.getLogger(__name__)

# Study facts the model is trained with; filled in from the study when the caller leaves them out.
_FROM_STUDY = (
    ("specialty", "specialty"),
    ("modality", "modality"),
    ("body_part", "body_part"),
    ("study_description", "description"),
)


class ModelUnavailable(RecordError):
    """No model may draft this: none active for the specialty and kind, or the one named cannot serve."""

    status = 409
    code = "model_unavailable"


class ModelIntegrityFailure(RecordError):
    """The model's files differ from the registry: it refuses to run (the failure is audited)."""

    status = 503
    code = "model_integrity_failure"


class DraftTooLarge(RecordError):
    """The inputs make a prompt longer than the model can read."""

    status = 413
    code = "too_large"


class EmptyDraft(RecordError):
    """The model produced no text for these inputs (an empty draft is not stored)."""

    status = 422
    code = "empty_draft"


def _as_id(reference: str) -> int | None:
    """The reference as a primary key when it is one (ASCII digits, within a 64-bit integer)."""
    if reference.isascii() and reference.isdigit() and len(reference) <= 18:
        return int(reference)
    return None


def find_study(reference: str) -> Study:
    """A study by accession number, else by numeric id; :class:`RecordNotFound` otherwise."""
    study = Study.objects.filter(accession_number=reference).first()
    if study is None and _as_id(reference) is not None:
        study = Study.objects.filter(pk=_as_id(reference)).first()
    if study is None:
        raise RecordNotFound("No study with this accession number or id.", field="study")
    return study


def complete_inputs(study: Study, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's inputs with the study's own facts added where the caller gave none."""
    completed = dict(inputs)
    for key, attribute in _FROM_STUDY:
        if completed.get(key) in (None, "") and getattr(study, attribute):
            completed[key] = getattr(study, attribute)
    completed.setdefault("prior_report_accession", None)
    return completed


def _serving_version(study: Study, kind: str, model_version: ModelVersion | None) -> ModelVersion:
    if model_version is None:
        mv = registry.active_version_for(specialty=study.specialty, kind=kind)
        if mv is None:
            raise ModelUnavailable(
                f"No active model serves {kind} drafts for {study.specialty or 'this'} studies.",
                field="model_version",
            )
        return mv
    label = f"{model_version.name} {model_version.version}"
    if model_version.status != ModelStatus.ACTIVE:
        raise ModelUnavailable(
            f"{label} is {model_version.status}; only an active model drafts for clinical use.",
            field="model_version",
        )
    if model_version.kinds and kind not in model_version.kinds:
        raise ModelUnavailable(f"{label} does not draft {kind}.", field="kind")
    if model_version.specialties and study.specialty not in model_version.specialties:
        raise ModelUnavailable(f"{label} does not serve {study.specialty or 'this'} studies.", field="study")
    return model_version


def draft_create(
    *,
    study: Study,
    kind: str,
    inputs: Mapping[str, Any],
    model_version: ModelVersion | None = None,
    actor: AbstractBaseUser | None,
    context: audit.AuditContext,
) -> AIOutput:
    """Generate a ``kind`` draft for ``study`` from ``inputs`` now, store it as an AI output and return it.

    ``model_version`` defaults to the active version serving the study's specialty and the kind.
    Raises :class:`InvalidRecord` (bad inputs, checked before the model runs), :class:`ModelUnavailable`,
    :class:`ModelIntegrityFailure`, :class:`DraftTooLarge` or :class:`EmptyDraft`; nothing is stored then.
    """
    if kind not in AIOutputKind.values:
        raise InvalidRecord(f"Unknown AI output kind {kind!r}.", field="kind")
    mv = _serving_version(study, kind, model_version)
    completed = complete_inputs(study, inputs)
    try:
        build_prompt(kind, completed)
        (generation,) = runtime.generate(mv, kind, [completed])
    except PromptError as exc:
        raise InvalidRecord(str(exc), field="inputs") from exc
    except runtime.PromptTooLong as exc:
        raise DraftTooLarge(str(exc), field="inputs") from exc
    except runtime.ArtifactIntegrityError as exc:
        raise ModelIntegrityFailure(
            f"{mv.name} {mv.version} failed its integrity check and refuses to run.", field="model_version"
        ) from exc
    except runtime.ModelNotRunnable as exc:
        raise ModelUnavailable(str(exc), field="model_version") from exc
    if not generation.text.strip():
        raise EmptyDraft(f"{mv.name} {mv.version} produced no text for these inputs.", field="inputs")
    payload = AIOutputPayload(
        accession_number=study.accession_number,
        study_instance_uid=None,
        kind=kind,
        model_name=mv.name,
        model_version=mv.version,
        inputs=completed,
        generation_settings=runtime.generation_settings(mv),
        text=generation.text,
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        latency_ms=generation.latency_ms,
        generated_at=timezone.now(),
    )
    return services.ai_output_ingest(payload=payload, actor=actor, context=context).record
