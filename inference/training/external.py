"""Register a hospital's own model: an ONNX artifact directory as is, or a Hugging Face directory exported
with optimum first.

* A directory with ``model.onnx`` is taken as is (registered where it lies) once the serving runtime
  can load it: ``config.json``, ``tokenizer.json``, a decoder with KV-cache inputs and outputs.
* Otherwise it must be a Hugging Face causal language model (``config.json`` with an architecture
  optimum can export for ``text-generation-with-past``, weights, ``tokenizer.json``) or an
  encoder-decoder one (T5, BART: ``text2text-generation-with-past``); it is exported into
  ``$CONCORDANCE_VAR_DIR/models/<name>-<version>/`` and the source directory is left untouched.
  Encoder-decoder models are registered with architecture ``seq2seq``.

A ``card.json`` is written when the directory has none. Any refusal leaves nothing registered and no
file behind.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from audit import log as audit
from inference import registry
from inference.runtime import ENGINES
from inference.runtime.engine import TextEngine
from portal.core.errors import InvalidRecord
from portal.records.models import AIOutputKind, ModelStatus, ModelVersion, Specialty

from .common import (
    TrainingError,
    default_out_dir,
    default_version,
    label_check,
    library_versions,
    staged_directory,
    train_extra,
)

#: Weight files optimum can read; a directory with none of them holds no model.
WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)


class ExternalModelError(TrainingError):
    """The directory is not a model this project can serve; nothing was written or registered."""


@dataclass(frozen=True)
class ExternalRequest:
    """What ``register_model`` was asked."""

    path: Path
    specialties: Sequence[str]
    kinds: Sequence[str] | None = None  # None: the card's kinds, else report_draft
    name: str = ""
    version: str = ""
    activate: bool = False


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExternalModelError(f"{path.name} is not readable JSON.") from exc
    if not isinstance(value, dict):
        raise ExternalModelError(f"{path.name} must hold a JSON object.")
    return value


def architecture_of(config: dict[str, Any]) -> str:
    """The registry's architecture for a Hugging Face config: ``seq2seq`` or ``causal``."""
    return "seq2seq" if config.get("is_encoder_decoder") else "causal"


def layout_check(directory: Path) -> TextEngine:
    """Load the directory with the serving runtime; raise :class:`ExternalModelError` when it cannot."""
    for required in registry.REQUIRED_FILES:
        if not (directory / required).is_file():
            raise ExternalModelError(f"{directory.name} lacks {required}.")
    config = _read_json(directory / "config.json")
    try:
        return ENGINES[architecture_of(config)](directory)
    except Exception as exc:  # onnxruntime and tokenizers raise their own types for unreadable files
        raise ExternalModelError(f"The runtime cannot load {directory.name}: {str(exc)[:200]}") from exc


def hf_check(directory: Path) -> dict[str, Any]:
    """Check a Hugging Face directory can be exported as a causal decoder; returns its config."""
    if not (directory / "config.json").is_file():
        raise ExternalModelError(f"{directory.name} holds neither model.onnx nor a Hugging Face config.json.")
    config = _read_json(directory / "config.json")
    model_type = str(config.get("model_type") or "")
    # The train extra (torch, optimum) is imported only when a directory needs exporting: registering
    # an ONNX directory must work in an installation without it.
    with train_extra("Registering a Hugging Face model directory (exported to ONNX first)"):
        from .export import causal_export_supported, seq2seq_export_supported

    supported = seq2seq_export_supported if config.get("is_encoder_decoder") else causal_export_supported
    if not supported(model_type):
        raise ExternalModelError(
            f"Unsupported architecture {model_type[:60]!r}: not a decoder (or encoder-decoder) "
            "optimum exports with past."
        )
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        raise ExternalModelError(f"{directory.name} has no model weights.")
    if not (directory / "tokenizer.json").is_file():
        raise ExternalModelError(f"{directory.name} lacks tokenizer.json (a fast tokenizer is needed).")
    return config


def _card(
    request: ExternalRequest, kinds: list[str], name: str, version: str, directory: Path, source: str
) -> dict[str, Any]:
    architecture = architecture_of(_read_json(directory / "config.json"))
    files = {p.name: registry.file_sha256(p) for p in sorted(directory.iterdir()) if p.is_file()}
    files.pop(registry.CARD_FILE, None)
    return {
        "name": name,
        "version": version,
        "architecture": architecture,
        "kinds": kinds,
        "specialties": sorted(request.specialties),
        "quantisation": "fp32",
        "lineage": {"source": source, "registered_from": str(request.path)},
        "metrics": {},
        "libraries": library_versions(),
        "files": files,
    }


def _export_hugging_face(
    request: ExternalRequest, source: Path, kinds: list[str], name: str, version: str, existing_card: dict
) -> tuple[Path, dict[str, Any]]:
    """Export a Hugging Face model directory (causal or encoder-decoder) to ONNX under the model store;
    all or nothing."""
    config = hf_check(source)
    with train_extra("Exporting a Hugging Face model directory"):
        from .export import onnx_export, seq2seq_onnx_export  # the train extra, as in hf_check

    directory = default_out_dir(name, version).resolve()
    if directory.exists():
        raise ExternalModelError(f"{directory} already exists.")
    with staged_directory(directory) as staging:
        try:
            if config.get("is_encoder_decoder"):
                seq2seq_onnx_export(source, staging)
                optimised = False  # onnxruntime optimises it when it loads it
            else:
                optimised = onnx_export(source, staging, optimisation_required=False)
        except Exception as exc:  # optimum raises many types for a model it cannot export
            raise ExternalModelError(f"optimum could not export the model: {str(exc)[:200]}") from exc
        shutil.copyfile(source / "tokenizer.json", staging / "tokenizer.json")
        layout_check(staging)
        card = existing_card or _card(
            request,
            kinds,
            name,
            version,
            staging,
            "a Hugging Face model directory exported here with optimum",
        )
        card = {**card, "name": name, "version": version, "graph_optimised": optimised}
        (staging / registry.CARD_FILE).write_text(
            json.dumps(card, indent=2, sort_keys=True), encoding="utf-8"
        )
    return directory, card


def external_model_register(
    *, request: ExternalRequest, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> ModelVersion:
    """Register the model at ``request.path`` (see module doc). Raises :class:`ExternalModelError`."""
    source = Path(request.path)
    if not source.is_dir():
        raise ExternalModelError(f"{source} is not a directory.")
    source = source.resolve()
    unknown = sorted(set(request.specialties) - set(Specialty.values))
    if not request.specialties or unknown:
        raise ExternalModelError(f"Unknown specialty {', '.join(unknown) or '(none given)'}.")
    existing_card = _read_json(source / registry.CARD_FILE) if (source / registry.CARD_FILE).is_file() else {}
    try:
        card_kinds = registry.card_names(existing_card, "kinds")
    except InvalidRecord as exc:
        raise ExternalModelError(str(exc)) from exc
    kinds = list(request.kinds or card_kinds or [AIOutputKind.REPORT_DRAFT.value])
    bad_kinds = sorted({str(k) for k in kinds} - set(AIOutputKind.values))
    if bad_kinds:
        raise ExternalModelError(f"Unknown kind {', '.join(bad_kinds)[:200]}.")
    name = request.name or str(existing_card.get("name") or source.name)
    version = request.version or str(existing_card.get("version") or default_version())
    for label, value in (("name", name), ("version", version)):
        label_check(label, value)
    if ModelVersion.objects.filter(name=name, version=version).exists():
        raise ExternalModelError(f"{name} {version} is already registered; choose another version.")

    written: list[Path] = []  # what to remove if anything below fails
    if (source / "model.onnx").is_file():
        layout_check(source)
        directory = source
        if not existing_card:
            card = _card(request, kinds, name, version, directory, "an ONNX model directory registered as is")
            (directory / registry.CARD_FILE).write_text(
                json.dumps(card, indent=2, sort_keys=True), encoding="utf-8"
            )
            written.append(directory / registry.CARD_FILE)
        else:
            card = existing_card
    else:
        directory, card = _export_hugging_face(request, source, kinds, name, version, existing_card)
        written.append(directory)
    try:
        return registry.model_version_register(
            directory=directory,
            name=name,
            version=version,
            architecture=architecture_of(_read_json(directory / "config.json")),
            kinds=kinds,
            specialties=sorted(request.specialties),
            card=card,
            lineage=card.get("lineage") or {},
            metrics=card.get("metrics") or {},
            generation_defaults=registry.generation_defaults_of(directory, card),
            status=ModelStatus.ACTIVE if request.activate else ModelStatus.CANDIDATE,
            actor=actor,
            context=context,
        )
    except registry.ArtifactIntegrityError as exc:
        # A symbolic link, or files that differ from the card's own list: a refusal, not a crash.
        _remove(written)
        raise ExternalModelError(f"{source.name} cannot be registered: {exc}.") from exc
    except BaseException:
        _remove(written)
        raise


def _remove(written: Sequence[Path]) -> None:
    """Undo what a failed registration wrote (an exported directory, a card written beside the model)."""
    for path in written:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
