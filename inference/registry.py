"""The model registry: which model versions exist here, what files they are made of, which one serves.

A version registered here names a directory of artifacts (``model.onnx``, ``config.json``,
``tokenizer.json``, ``generation_config.json``, ``card.json``) and stores the SHA-256 of EVERY file in
it. The runtime re-hashes the files before it loads them (:func:`verify_artifacts`): a model whose bytes
changed since registration refuses to run, and the refusal is an audit event, because a draft produced
by other weights than the registry names would be false provenance.

Every change (register, activate, retire, integrity failure) is audited in the transaction that makes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from audit import log as audit
from audit.canonical import canonical_json
from portal.core.errors import InvalidRecord, RecordConflict
from portal.records.models import AIOutputKind, ModelStatus, ModelVersion, Specialty

logger = logging.getLogger(__name__)

ARCHITECTURES = ("causal", "seq2seq")
# The files the runtime needs; a directory without them is not a model (see docs/runtime.md).
REQUIRED_FILES = ("model.onnx", "config.json", "tokenizer.json")
CARD_FILE = "card.json"
_CHUNK = 1 << 20


class ArtifactIntegrityError(Exception):
    """A model's files differ from what the registry recorded (changed, missing or added file)."""


def builtin_artifacts_root() -> Path:
    """Where the shipped default models live: ``inference/artifacts/<name>-<version>/``."""
    return Path(settings.BASE_DIR) / "inference" / "artifacts"


def file_sha256(path: Path) -> str:
    """SHA-256 of one file, read in chunks (model files are megabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_hashes(directory: Path) -> dict[str, str]:
    """Every regular file under ``directory``: relative POSIX path -> SHA-256, sorted by path.

    Symbolic links are refused: a link could point the registry's hash at one file and the runtime at
    another.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactIntegrityError(f"artifact directory {directory} does not exist")
    hashes: dict[str, str] = {}
    for path in sorted(directory.rglob("*")):
        if path.is_symlink():
            raise ArtifactIntegrityError(f"artifact {path.name} is a symbolic link")
        if path.is_file():
            hashes[path.relative_to(directory).as_posix()] = file_sha256(path)
    return hashes


def artifacts_digest(artifacts: dict[str, str]) -> str:
    """One hash naming a whole artifact: SHA-256 of the canonical JSON of its ``{file: sha256}`` map."""
    return hashlib.sha256(canonical_json(artifacts)).hexdigest()


def artifact_dir_of(model_version: ModelVersion) -> Path:
    """The version's artifact directory: relative paths are relative to the project root."""
    path = Path(model_version.artifact_dir)
    return path if path.is_absolute() else Path(settings.BASE_DIR) / path


def _stored_dir(directory: Path) -> str:
    """Store paths inside the project relative to it, so a checkout can move; others as given."""
    directory = directory.resolve()
    try:
        return directory.relative_to(Path(settings.BASE_DIR).resolve()).as_posix()
    except ValueError:
        return str(directory)


def _validate(architecture: str, kinds: Iterable[str], specialties: Iterable[str]) -> None:
    if architecture not in ARCHITECTURES:
        raise InvalidRecord(
            f"Unsupported architecture {architecture!r}; expected one of {', '.join(ARCHITECTURES)}.",
            field="architecture",
        )
    kinds = list(kinds)
    if not kinds:
        raise InvalidRecord("A model must serve at least one kind of AI output.", field="kinds")
    unknown = sorted(set(kinds) - set(AIOutputKind.values))
    if unknown:
        raise InvalidRecord(f"Unknown AI output kinds: {', '.join(unknown)}.", field="kinds")
    unknown = sorted(set(specialties) - set(Specialty.values))
    if unknown:
        raise InvalidRecord(f"Unknown specialties: {', '.join(unknown)}.", field="specialties")


def card_names(card: dict[str, Any], key: str) -> list[str] | None:
    """A list of names from a card (``kinds``, ``specialties``): None when absent, InvalidRecord when the
    card holds anything but a list of texts (``list("chest")`` would otherwise read as five letters)."""
    value = card.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidRecord(f"The model card's {key} must be a list of names.", field=key)
    return list(value)


def _validate_sections(sections: dict[str, Any]) -> None:
    """Lineage, metrics, generation defaults and the card are JSON objects: the pages and the audit
    trail read them by key."""
    for name, value in sections.items():
        if not isinstance(value, dict):
            raise InvalidRecord(f"The model card's {name} must be a JSON object.", field=name)


def _check_card_hashes(card: dict[str, Any], hashes: dict[str, str]) -> None:
    """The card's own file list (``files``: name -> sha256), when it has one, must match the files."""
    listed = card.get("files")
    if not isinstance(listed, dict):
        return
    wrong = sorted(name for name, sha in listed.items() if isinstance(sha, str) and hashes.get(name) != sha)
    if wrong:
        raise ArtifactIntegrityError(f"files differ from the model card: {', '.join(wrong[:5])}")


def _check_card_quantisation(card: dict[str, Any], quantisation: str) -> None:
    """A quantised graph is never registered as the fp32 model: the card and the row must agree."""
    declared = card.get("quantisation")
    if isinstance(declared, str) and declared != quantisation:
        raise InvalidRecord(
            f"The model card says {declared[:20]!r} weights; they cannot be registered as {quantisation!r}.",
            field="quantisation",
        )


def _overlaps(a: list[str], b: list[str]) -> bool:
    """Two lists of scope overlap when either is unrestricted (empty) or they share a value."""
    return not a or not b or bool(set(a) & set(b))


def _model_files(directory: Path, card: dict[str, Any]) -> dict[str, str]:
    """The SHA-256 of every file of a model directory, checked: required files present, card hashes true."""
    hashes = artifact_hashes(directory)
    missing = [f for f in REQUIRED_FILES if f not in hashes]
    if missing:
        raise InvalidRecord(
            f"{directory.name} is not a model directory: missing {', '.join(missing)}.", field="directory"
        )
    _check_card_hashes(card, hashes)
    return hashes


def _store_version(
    existing: ModelVersion | None, *, name: str, version: str, fields: dict[str, Any]
) -> tuple[ModelVersion, bool]:
    """Create the version, or give a version known only by name (ingested outputs) its artifacts.

    Returns the version and whether this call wrote it; a concurrent registration of the same bytes
    wrote it first (nothing to audit again), of other bytes is a :class:`RecordConflict`.
    """
    if existing is not None:
        for key, value in fields.items():
            setattr(existing, key, value)
        existing.save()
        return existing, True
    try:
        with transaction.atomic():
            return ModelVersion.objects.create(name=name, version=version, **fields), True
    except IntegrityError:
        # A concurrent registration (or an ingested output) created it first: decide again.
        raced = ModelVersion.objects.get(name=name, version=version)
        if raced.artifacts and raced.artifact_sha256 == fields["artifact_sha256"]:
            return raced, False
        raise RecordConflict(
            f"{name} {version} was registered concurrently; register again.", field="version"
        ) from None


def _audit_registered(
    mv: ModelVersion, details: dict[str, Any], *, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> None:
    """The ``model_version.register`` event: which bytes, for which kinds and specialties, and its parent."""
    audit.record(
        "model_version.register",
        actor=actor,
        context=context,
        object_type="model_version",
        object_id=mv.pk,
        details={
            "name": mv.name,
            "version": mv.version,
            "architecture": details["architecture"],
            "artifact_sha256": mv.artifact_sha256,
            "files": details["files"],
            "kinds": list(mv.kinds),
            "specialties": list(mv.specialties),
            "parent": details["parent"],
        },
    )


@transaction.atomic
def model_version_register(
    *,
    directory: Path,
    name: str,
    version: str,
    architecture: str,
    kinds: list[str],
    specialties: list[str],
    card: dict[str, Any],
    lineage: dict[str, Any],
    metrics: dict[str, Any],
    generation_defaults: dict[str, Any],
    quantisation: str = "fp32",
    parent: ModelVersion | None = None,
    status: str = ModelStatus.CANDIDATE,
    actor: AbstractBaseUser | None,
    context: audit.AuditContext,
) -> ModelVersion:
    """Hash every file of ``directory`` and register it as model ``name`` ``version``; audited.

    Idempotent: registering the same name, version and bytes again returns the stored version. The same
    name and version with other bytes is a :class:`RecordConflict` (a version names one set of weights
    forever). A version first seen as the name of an ingested output (no artifacts yet) gains them here.
    ``status="active"`` also activates it (see :func:`model_version_activate`).
    """
    directory = Path(directory)
    _validate(architecture, kinds, specialties)
    _validate_sections(
        {"card": card, "lineage": lineage, "metrics": metrics, "generation_defaults": generation_defaults}
    )
    if status not in ModelStatus.values:
        raise InvalidRecord(f"Unknown model status {status!r}.", field="status")
    hashes = _model_files(directory, card)
    _check_card_quantisation(card, quantisation)
    digest = artifacts_digest(hashes)
    existing = ModelVersion.objects.select_for_update().filter(name=name, version=version).first()
    if existing is not None and existing.artifacts:
        if existing.artifact_sha256 != digest:
            raise RecordConflict(
                f"{name} {version} is already registered with other artifacts; register a new version.",
                field="version",
            )
        if status == ModelStatus.ACTIVE and existing.status != ModelStatus.ACTIVE:
            return model_version_activate(model_version=existing, actor=actor, context=context)
        return existing
    fields = {
        "specialty": specialties[0] if len(specialties) == 1 else "",
        "specialties": list(specialties),
        "kinds": list(kinds),
        "architecture": architecture,
        "artifact_dir": _stored_dir(directory),
        "artifacts": hashes,
        "artifact_sha256": digest,
        "tokenizer_sha256": hashes.get("tokenizer.json", ""),
        "quantisation": quantisation,
        "parent": parent,
        "lineage": lineage,
        "metrics": metrics,
        "card": card,
        "generation_defaults": generation_defaults,
        "status": ModelStatus.CANDIDATE,
    }
    mv, written = _store_version(existing, name=name, version=version, fields=fields)
    if not written:
        return mv
    details = {"architecture": architecture, "files": len(hashes), "parent": parent.pk if parent else None}
    _audit_registered(mv, details, actor=actor, context=context)
    if status == ModelStatus.ACTIVE:
        mv = model_version_activate(model_version=mv, actor=actor, context=context)
    elif status == ModelStatus.RETIRED:
        mv.status = ModelStatus.RETIRED
        mv.save(update_fields=["status"])
    return mv


@transaction.atomic
def model_version_activate(
    *, model_version: ModelVersion, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> ModelVersion:
    """Make ``model_version`` the one that serves its specialties and kinds; audited.

    Active versions whose specialties and kinds overlap with it are retired in the same transaction,
    so at most one version serves a (specialty, kind) pair. Only runnable versions can be activated.
    """
    mv = ModelVersion.objects.select_for_update().get(pk=model_version.pk)
    if not mv.is_runnable:
        raise InvalidRecord(
            f"{mv.name} {mv.version} has no local artifacts; only a registered model can serve.",
            field="model_version",
        )
    if mv.status == ModelStatus.ACTIVE:
        return mv
    others = ModelVersion.objects.select_for_update().filter(status=ModelStatus.ACTIVE).exclude(pk=mv.pk)
    retired = [
        other
        for other in others.order_by("pk")
        if _overlaps(other.specialties, mv.specialties) and _overlaps(other.kinds, mv.kinds)
    ]
    for other in retired:
        other.status = ModelStatus.RETIRED
        other.save(update_fields=["status"])
        audit.record(
            "model_version.retire",
            actor=actor,
            context=context,
            object_type="model_version",
            object_id=other.pk,
            details={"name": other.name, "version": other.version, "replaced_by": mv.pk},
        )
    mv.status = ModelStatus.ACTIVE
    mv.save(update_fields=["status"])
    audit.record(
        "model_version.activate",
        actor=actor,
        context=context,
        object_type="model_version",
        object_id=mv.pk,
        details={
            "name": mv.name,
            "version": mv.version,
            "artifact_sha256": mv.artifact_sha256,
            "retired": [other.pk for other in retired],
        },
    )
    model_version.status = mv.status
    return mv


def integrity_problems(model_version: ModelVersion) -> list[str]:
    """What differs between the files on disk and the registry (empty when they match). No side effects."""
    if artifacts_digest(model_version.artifacts) != model_version.artifact_sha256:
        return ["the registry's file list does not match its recorded digest"]
    try:
        current = artifact_hashes(artifact_dir_of(model_version))
    except ArtifactIntegrityError as exc:
        return [str(exc)]
    expected = model_version.artifacts
    problems = [f"missing {path}" for path in sorted(set(expected) - set(current))]
    problems += [f"unexpected {path}" for path in sorted(set(current) - set(expected))]
    problems += [
        f"changed {path}" for path in sorted(set(expected) & set(current)) if expected[path] != current[path]
    ]
    return problems


def verify_artifacts(model_version: ModelVersion) -> None:
    """Re-hash the version's files; on any difference audit it and raise :class:`ArtifactIntegrityError`.

    The audit event is written in its own transaction (committed even though the caller fails), so a
    tampered model leaves a trace whatever the caller does next.
    """
    if not model_version.is_runnable:
        raise ArtifactIntegrityError(f"{model_version.name} {model_version.version} has no local artifacts")
    problems = integrity_problems(model_version)
    if not problems:
        return
    logger.error("model %s failed its integrity check: %s", model_version.pk, "; ".join(problems[:5]))
    with transaction.atomic():
        audit.record(
            "model_version.integrity_failure",
            actor=None,
            object_type="model_version",
            object_id=model_version.pk,
            details={
                "name": model_version.name,
                "version": model_version.version,
                "problems": problems[:20],
            },
        )
    raise ArtifactIntegrityError(
        f"{model_version.name} {model_version.version}: artifacts differ from the registry "
        f"({'; '.join(problems[:3])})"
    )


def read_card(directory: Path) -> dict[str, Any]:
    """The model card of an artifact directory (``card.json``), or an empty dict when there is none."""
    path = Path(directory) / CARD_FILE
    if not path.is_file():
        return {}
    card = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(card, dict):
        raise InvalidRecord(f"{path.name} must hold a JSON object.", field="card")
    return card


def generation_defaults_of(directory: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Decoding defaults of a model: the card's, else those of ``generation_config.json``."""
    if card.get("generation_defaults") is not None:
        _validate_sections({"generation_defaults": card["generation_defaults"]})
        return dict(card["generation_defaults"])
    path = Path(directory) / "generation_config.json"
    defaults: dict[str, Any] = {"decoding": "greedy"}
    if path.is_file():
        config = json.loads(path.read_text(encoding="utf-8"))
        for key in ("max_new_tokens", "eos_token_id", "pad_token_id"):
            if key in config:
                defaults[key] = config[key]
    return defaults


def model_version_register_directory(
    *,
    directory: Path,
    status: str = ModelStatus.CANDIDATE,
    actor: AbstractBaseUser | None,
    context: audit.AuditContext,
    **overrides: Any,
) -> ModelVersion:
    """Register an artifact directory from its own model card (``overrides`` win over the card)."""
    directory = Path(directory)
    card = read_card(directory)
    values: dict[str, Any] = {
        "name": card.get("name") or directory.name,
        "version": str(card.get("version") or "0"),
        "architecture": card.get("architecture", "causal"),
        "kinds": card_names(card, "kinds") or [],
        "specialties": card_names(card, "specialties") or [],
        "lineage": card.get("lineage") or {},
        "metrics": card.get("metrics") or {},
        "quantisation": card.get("quantisation", "fp32"),
    }
    values.update(overrides)
    values.setdefault("generation_defaults", generation_defaults_of(directory, card))
    return model_version_register(
        directory=directory, card=card, status=status, actor=actor, context=context, **values
    )


def register_builtin_models(
    *, actor: AbstractBaseUser | None = None, context: audit.AuditContext
) -> list[ModelVersion]:
    """Register every shipped model under ``inference/artifacts/`` (idempotent); newest first per name.

    Several versions of one model may be shipped: older ones stay so that the drafts they wrote remain
    reproducible. The newest version of each name is the one offered to serve, and it is activated
    only where that overturns nobody's choice: when nothing else serves its specialties and kinds, or
    what serves them is an older shipped version of the same name (an upgrade). A department that
    activated its own model keeps it (the new shipped version waits as a candidate), and a shipped
    model registered before keeps its status, so one that was retired does not come back on the next
    start. Older shipped versions are registered retired.
    """
    root = builtin_artifacts_root()
    if not root.is_dir():
        return []
    shipped: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for directory in sorted(root.iterdir()):
        # A dot-directory is a build in progress (train_model stages there, then renames).
        staging = directory.name.startswith(".")
        if staging or not (directory.is_dir() and (directory / "model.onnx").is_file()):
            continue
        card = read_card(directory)
        shipped.setdefault(card.get("name") or directory.name, []).append((directory, card))
    registered = []
    for name in sorted(shipped):
        # Oldest first, so that a shipped variant finds the parent its card names already registered.
        versions = sorted(shipped[name], key=lambda item: _version_key(item[1]))
        done = [
            _register_shipped(
                directory, card, name, newest=i == len(versions) - 1, actor=actor, context=context
            )
            for i, (directory, card) in enumerate(versions)
        ]
        registered += reversed(done)
    return registered


def default_shipped_model(*, context: audit.AuditContext) -> ModelVersion | None:
    """Register the shipped models and return the one serving (the newest active shipped version)."""
    active = [mv for mv in register_builtin_models(context=context) if mv.status == ModelStatus.ACTIVE]
    return active[0] if active else None


def _version_key(card: dict[str, Any]) -> tuple[tuple[int, ...], str]:
    """Order versions numerically where they are dotted numbers ("1.10.0" after "1.9.0")."""
    text = str(card.get("version") or "0")
    numbers = tuple(int(part) if part.isdigit() else -1 for part in text.split("."))
    return numbers, text


def _register_shipped(
    directory: Path,
    card: dict[str, Any],
    name: str,
    *,
    newest: bool,
    actor: AbstractBaseUser | None,
    context: audit.AuditContext,
) -> ModelVersion:
    known = ModelVersion.objects.filter(name=name, version=str(card.get("version") or "0")).first()
    if known is not None and known.artifacts:
        if known.artifact_sha256 != artifacts_digest(artifact_hashes(directory)):
            raise RecordConflict(
                f"{known.name} {known.version} is registered with other artifacts than {directory.name}.",
                field="version",
            )
        return known
    status = ModelStatus.CANDIDATE if newest else ModelStatus.RETIRED
    mv = model_version_register_directory(
        directory=directory, status=status, actor=actor, context=context, parent=_shipped_parent(card)
    )
    if newest and _only_older_shipped_serve(mv):
        mv = model_version_activate(model_version=mv, actor=actor, context=context)
    return mv


def _shipped_parent(card: dict[str, Any]) -> ModelVersion | None:
    """The registered version a shipped variant's card names as its parent (same bytes), if any."""
    named = (card.get("lineage") or {}).get("parent")
    if not isinstance(named, dict):
        return None
    return ModelVersion.objects.filter(
        name=named.get("name"), version=named.get("version"), artifact_sha256=named.get("artifact_sha256")
    ).first()


def _only_older_shipped_serve(mv: ModelVersion) -> bool:
    """Is every active version overlapping ``mv`` a shipped version of the same name (or none at all)?"""
    root = builtin_artifacts_root().resolve()
    for other in ModelVersion.objects.filter(status=ModelStatus.ACTIVE).exclude(pk=mv.pk):
        if not (_overlaps(other.specialties, mv.specialties) and _overlaps(other.kinds, mv.kinds)):
            continue
        if other.name != mv.name or not artifact_dir_of(other).resolve().is_relative_to(root):
            return False
    return True


def active_version_for(*, specialty: str, kind: str) -> ModelVersion | None:
    """The active, runnable version serving ``kind`` for ``specialty`` (specific before unrestricted)."""
    candidates = [
        mv
        for mv in ModelVersion.objects.filter(status=ModelStatus.ACTIVE).order_by("-created_at", "-pk")
        if mv.is_runnable and (not mv.kinds or kind in mv.kinds)
    ]
    for mv in candidates:
        if specialty and specialty in mv.specialties:
            return mv
    for mv in candidates:
        if not mv.specialties:
            return mv
    return None
