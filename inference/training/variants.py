"""Derived versions of a registered model: the same weights in a fused graph, or int8 weights.

Either is registered as its OWN model version (new name:version, its own file hashes, ``parent`` the
version it came from, its own evaluation in the card): a draft must name the bytes that wrote it.

* ``fused`` (GPT-2 only): the fused graph of :mod:`inference.training.fused_graph` with the static
  KV cache (GroupQueryAttention; the fastest measured, docs/benchmarks.md). Adopted only when its
  greedy answers are identical, token for token, to the parent's on the evaluation prompts; otherwise
  nothing is written or registered.
* ``int8``: dynamic quantisation of the parent's graph with onnxruntime's quantiser (the one optimum's
  ``ORTQuantizer`` wraps; int8 weights, activations quantised per call). Its answers may differ from
  the parent's: the card records how often and how much (the discrepancy engine's significant
  findings against the parent's drafts).

The evaluation prompts are built from the inputs of the latest stored ``report_draft`` outputs: what
the department's model is really asked.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from audit import log as audit
from inference import registry
from inference.compare import compare
from inference.prompts import PromptError, build_prompt
from inference.runtime.engine import DecoderEngine
from portal.records.models import AIOutput, AIOutputKind, ModelStatus, ModelVersion

from .common import (
    TrainingError,
    default_out_dir,
    label_check,
    library_versions,
    staged_directory,
    train_extra,
)

VARIANTS = ("fused", "int8")
COPIED_FILES = ("config.json", "generation_config.json", "tokenizer.json")
#: Drafts of its own a variant's card shows (the trained pipeline's cards show two per kind).
SAMPLES = 2


class VariantError(TrainingError):
    """The variant cannot be built or would not be faithful; nothing was written or registered."""


@dataclass(frozen=True)
class VariantRequest:
    """What ``optimise_model`` was asked: which version, which variant, the new version's label."""

    model_version: ModelVersion
    variant: str
    version: str
    eval_prompts: int = 24
    activate: bool = False


def evaluation_prompts(engine: DecoderEngine, count: int) -> list[tuple[str, str]]:
    """(accession, prompt) of the ``count`` latest stored ``report_draft`` outputs with room to answer.

    What the department's drafting model is really asked (the stored inputs are exactly what a model
    saw); the accession (or, for a study that has none yet, its StudyInstanceUID) names the study in
    the card's samples. Raises :class:`VariantError` when there is none to evaluate on.
    """
    window = engine.shape.max_positions or 10**9
    prompts: list[tuple[str, str]] = []
    stored = (
        AIOutput.objects.filter(kind=AIOutputKind.REPORT_DRAFT)
        .order_by("-pk")
        .values_list("inputs", "study__accession_number", "study__study_instance_uid")
    )
    for inputs, accession, study_uid in stored[: count * 3].iterator():
        try:
            prompt = build_prompt("report_draft", inputs)
        except PromptError:
            continue
        if len(engine.encode([prompt])[0]) + engine.default_max_new_tokens <= window:
            prompts.append((accession or study_uid or "", prompt))
        if len(prompts) == count:
            break
    if not prompts:
        raise VariantError("No stored report drafts to evaluate the variant on (seed or ingest some first).")
    return prompts


def _build_graph(variant: str, source: Path, staging: Path) -> dict[str, Any]:
    """Write the variant's ``model.onnx`` into ``staging``; returns what the card records of it."""
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    if variant == "fused":
        with train_extra("The fused variant", needs=("onnx",)):
            from .fused_graph import STATIC_GRAPH_NAME, FusionError, fuse_graph_file  # onnx: train extra

        try:
            fuse_graph_file(source / "model.onnx", config, staging / "model.onnx", static_cache=True)
        except FusionError as exc:
            raise VariantError(str(exc)) from exc
        return {"graph": STATIC_GRAPH_NAME, "quantisation": "fp32"}
    # onnxruntime's dynamic quantiser, which optimum's ORTQuantizer wraps: called directly because
    # ORTQuantizer cannot type the contrib ops of an optimised graph (SkipLayerNormalization...).
    with train_extra("The int8 variant", needs=("onnx",)):
        from onnx import TensorProto
        from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source / "model.onnx",
        staging / "model.onnx",
        weight_type=QuantType.QInt8,
        per_channel=False,
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )
    return {"graph": "onnxruntime quantize_dynamic, int8 weights per tensor", "quantisation": "int8"}


def _evaluate(parent: DecoderEngine, variant: DecoderEngine, count: int) -> tuple[dict[str, Any], list]:
    """How the variant's greedy drafts compare with the parent's on the evaluation prompts.

    Returns the card's ``variant_evaluation`` and the variant's own first :data:`SAMPLES` drafts (the
    card's ``samples``: what this version wrote, never its parent's).
    """
    asked = evaluation_prompts(parent, count)
    prompts = [prompt for _, prompt in asked]
    ours = [c.text for c, _ in variant.generate(prompts)]
    theirs = [c.text for c, _ in parent.generate(prompts)]
    significant = [len(compare(a, b).significant) for a, b in zip(ours, theirs, strict=True)]
    evaluation = {
        "prompts": len(prompts),
        "prompt_source": "the inputs of the latest stored report_draft AI outputs",
        "identical_to_parent_share": sum(a == b for a, b in zip(ours, theirs, strict=True)) / len(prompts),
        "drafts_with_significant_discrepancy_vs_parent_share": sum(n > 0 for n in significant) / len(prompts),
        "significant_discrepancies_vs_parent": sum(significant),
    }
    samples = [
        {"accession": accession, "output": text}
        for (accession, _), text in zip(asked[:SAMPLES], ours, strict=False)
    ]
    return evaluation, samples


def _card(
    request: VariantRequest,
    built: dict[str, Any],
    evaluation: dict[str, Any],
    samples: list[dict[str, str]],
    directory: Path,
) -> dict:
    parent = request.model_version
    card = dict(parent.card or {})
    card.update(
        {
            "name": parent.name,
            "version": request.version,
            "quantisation": built["quantisation"],
            "graph": built["graph"],
            "lineage": {
                **(parent.lineage or {}),
                "parent": {
                    "name": parent.name,
                    "version": parent.version,
                    "artifact_sha256": parent.artifact_sha256,
                },
                "derived_by": f"optimise_model {parent.name}:{parent.version} --variant {request.variant}",
            },
            "metrics": {**(parent.metrics or {}), "variant_evaluation": evaluation},
            "libraries": library_versions(),
            # Its own drafts on the evaluation prompts: the parent's samples are not this version's.
            "samples": {"report_draft": samples},
        }
    )
    card["files"] = {p.name: registry.file_sha256(p) for p in sorted(directory.iterdir()) if p.is_file()}
    return card


def variant_build(
    *, request: VariantRequest, actor: AbstractBaseUser | None, context: audit.AuditContext
) -> ModelVersion:
    """Build, check, evaluate and register the variant (see module doc); raises :class:`VariantError`."""
    parent = request.model_version
    if request.variant not in VARIANTS:
        raise VariantError(f"Unknown variant {request.variant[:40]!r}; use one of {', '.join(VARIANTS)}.")
    label_check("version", request.version)
    if (
        request.version == parent.version
        or ModelVersion.objects.filter(name=parent.name, version=request.version).exists()
    ):
        raise VariantError(f"{parent.name} {request.version} exists: a variant is a version of its own.")
    if not parent.is_runnable or parent.architecture != "causal":
        raise VariantError(f"{parent.name} {parent.version} is not a runnable causal model here.")
    if (parent.quantisation or "fp32") != "fp32":
        raise VariantError("Variants are made from an fp32 version.")
    registry.verify_artifacts(parent)
    source = registry.artifact_dir_of(parent)
    directory = default_out_dir(parent.name, request.version).resolve()
    if directory.exists():
        raise VariantError(f"{directory} already exists.")
    with staged_directory(directory) as staging:
        built = _build_graph(request.variant, source, staging)
        for name in COPIED_FILES:
            if (source / name).is_file():
                shutil.copyfile(source / name, staging / name)
        evaluation, samples = _evaluate(DecoderEngine(source), DecoderEngine(staging), request.eval_prompts)
        if request.variant == "fused" and evaluation["identical_to_parent_share"] != 1.0:
            raise VariantError("The fused graph's drafts differ from the parent's; it is not adopted.")
        card = _card(request, built, evaluation, samples, staging)
        (staging / registry.CARD_FILE).write_text(
            json.dumps(card, indent=2, sort_keys=True), encoding="utf-8"
        )
    try:
        return registry.model_version_register_directory(
            directory=directory,
            parent=parent,
            status=ModelStatus.ACTIVE if request.activate else ModelStatus.CANDIDATE,
            actor=actor,
            context=context,
        )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
