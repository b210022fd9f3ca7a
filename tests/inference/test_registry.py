"""The model registry: registering hashes every file, activation retires, tampering is caught and audited."""

from __future__ import annotations

import json
import shutil

import pytest
from django.conf import settings

from audit.log import SYSTEM
from audit.models import AuditEvent
from inference import registry
from inference.registry import ArtifactIntegrityError
from portal.core.errors import InvalidRecord, RecordConflict
from portal.records.models import ModelStatus, ModelVersion

pytestmark = pytest.mark.django_db


def register(directory, **overrides):
    values = {
        "directory": directory,
        "name": "chest-draft",
        "version": "1.0.0",
        "architecture": "causal",
        "kinds": ["report_draft"],
        "specialties": ["chest"],
        "card": {"name": "chest-draft"},
        "lineage": {"reports": 12},
        "metrics": {"facts_right": 0.9},
        "generation_defaults": {"max_new_tokens": 24},
        "actor": None,
        "context": SYSTEM,
    }
    values.update(overrides)
    return registry.model_version_register(**values)


def test_it_hashes_every_file_and_audits_the_registration(tiny_copy):
    mv = register(tiny_copy)
    assert set(mv.artifacts) == {p.name for p in tiny_copy.iterdir()}
    assert mv.artifacts["model.onnx"] == registry.file_sha256(tiny_copy / "model.onnx")
    assert mv.artifact_sha256 == registry.artifacts_digest(mv.artifacts)
    assert mv.tokenizer_sha256 == mv.artifacts["tokenizer.json"]
    assert mv.status == ModelStatus.CANDIDATE and mv.is_runnable
    assert mv.specialty == "chest"
    assert registry.artifact_dir_of(mv) == tiny_copy.resolve()
    event = AuditEvent.objects.get(action="model_version.register")
    assert event.object_id == str(mv.pk)
    assert event.details["artifact_sha256"] == mv.artifact_sha256


def test_a_directory_inside_the_project_is_stored_relative_to_it(tiny_model_version):
    assert not tiny_model_version.artifact_dir.startswith("/")
    assert registry.artifact_dir_of(tiny_model_version).is_dir()
    assert str(registry.artifact_dir_of(tiny_model_version)).startswith(str(settings.BASE_DIR))


def test_registering_the_same_bytes_again_is_idempotent(tiny_copy):
    first = register(tiny_copy)
    second = register(tiny_copy)
    assert first.pk == second.pk
    assert AuditEvent.objects.filter(action="model_version.register").count() == 1


def test_the_same_version_with_other_bytes_is_refused(tiny_copy, tmp_path):
    register(tiny_copy)
    other = tmp_path / "other"
    shutil.copytree(tiny_copy, other)
    (other / "card.json").write_text(json.dumps({"name": "changed"}))
    with pytest.raises(RecordConflict):
        register(other)
    assert ModelVersion.objects.count() == 1


def test_a_version_first_named_by_an_ingested_output_gains_its_artifacts(tiny_copy):
    ModelVersion.objects.create(name="chest-draft", version="1.0.0")
    mv = register(tiny_copy)
    assert ModelVersion.objects.count() == 1
    assert mv.is_runnable


@pytest.mark.parametrize(
    "overrides",
    [
        {"architecture": "diffusion"},
        {"kinds": []},
        {"kinds": ["haiku"]},
        {"specialties": ["cardiology'; DROP TABLE records_modelversion;--"]},
        {"status": "<script>alert(1)</script>"},
    ],
)
def test_bad_registrations_are_refused_with_nothing_written(tiny_copy, overrides):
    with pytest.raises(InvalidRecord):
        register(tiny_copy, **overrides)
    assert not ModelVersion.objects.exists()
    assert not AuditEvent.objects.filter(action="model_version.register").exists()


def test_a_directory_without_a_model_is_refused(tmp_path):
    (tmp_path / "card.json").write_text("{}")
    with pytest.raises(InvalidRecord, match="model.onnx"):
        register(tmp_path)
    with pytest.raises(ArtifactIntegrityError):
        register(tmp_path / "missing")
    assert not ModelVersion.objects.exists()


def test_a_symbolic_link_in_the_artifacts_is_refused(tiny_copy):
    (tiny_copy / "extra.onnx").symlink_to(tiny_copy / "model.onnx")
    with pytest.raises(ArtifactIntegrityError, match="symbolic link"):
        register(tiny_copy)


def test_activation_retires_the_overlapping_active_version_only(tiny_copy):
    old = register(tiny_copy, version="1.0.0", status=ModelStatus.ACTIVE)
    neuro = register(tiny_copy, name="neuro-draft", specialties=["neuro"], status=ModelStatus.ACTIVE)
    new = register(tiny_copy, version="1.1.0", specialties=["chest", "musculoskeletal"], parent=old)
    assert new.status == ModelStatus.CANDIDATE
    registry.model_version_activate(model_version=new, actor=None, context=SYSTEM)
    old.refresh_from_db(), neuro.refresh_from_db(), new.refresh_from_db()
    assert (old.status, neuro.status, new.status) == (
        ModelStatus.RETIRED,
        ModelStatus.ACTIVE,
        ModelStatus.ACTIVE,
    )
    assert new.parent == old
    event = AuditEvent.objects.filter(action="model_version.activate").latest("seq")
    assert event.details["retired"] == [old.pk]
    assert AuditEvent.objects.filter(action="model_version.retire", object_id=str(old.pk)).exists()


def test_a_version_without_artifacts_cannot_be_activated():
    mv = ModelVersion.objects.create(name="elsewhere", version="1")
    with pytest.raises(InvalidRecord):
        registry.model_version_activate(model_version=mv, actor=None, context=SYSTEM)
    mv.refresh_from_db()
    assert mv.status == ModelStatus.CANDIDATE


def test_the_active_version_for_a_specialty_prefers_a_specific_one(tiny_copy):
    general = register(tiny_copy, name="general", specialties=[], status=ModelStatus.ACTIVE)
    chest = register(tiny_copy, name="chest", specialties=["chest"], kinds=["report_draft"])
    assert registry.active_version_for(specialty="chest", kind="report_draft") == general
    # Activating the chest model retires the unrestricted one: their scopes overlap.
    registry.model_version_activate(model_version=chest, actor=None, context=SYSTEM)
    assert registry.active_version_for(specialty="chest", kind="report_draft") == chest
    assert registry.active_version_for(specialty="chest", kind="patient_letter") is None
    assert registry.active_version_for(specialty="neuro", kind="report_draft") is None


def test_verification_passes_on_untouched_files(tiny_model_version):
    registry.verify_artifacts(tiny_model_version)
    assert not AuditEvent.objects.filter(action="model_version.integrity_failure").exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: (d / "model.onnx").write_bytes((d / "model.onnx").read_bytes() + b"\0"),
        lambda d: (d / "tokenizer.json").unlink(),
        lambda d: (d / "model.onnx_data").write_bytes(b"weights from elsewhere"),
    ],
    ids=["changed", "missing", "added"],
)
def test_tampered_artifacts_are_refused_and_audited(tiny_copy, damage):
    mv = register(tiny_copy)
    damage(tiny_copy)
    with pytest.raises(ArtifactIntegrityError):
        registry.verify_artifacts(mv)
    event = AuditEvent.objects.get(action="model_version.integrity_failure")
    assert event.object_id == str(mv.pk)
    assert event.details["problems"]


def test_a_tampered_registry_row_is_caught(tiny_copy):
    mv = register(tiny_copy)
    ModelVersion.objects.filter(pk=mv.pk).update(artifacts={**mv.artifacts, "model.onnx": "0" * 64})
    mv.refresh_from_db()
    with pytest.raises(ArtifactIntegrityError):
        registry.verify_artifacts(mv)


def test_the_integrity_event_survives_the_callers_failure(tiny_copy, django_db_blocker):
    mv = register(tiny_copy)
    (tiny_copy / "config.json").write_text("{}")
    with pytest.raises(ArtifactIntegrityError):
        registry.verify_artifacts(mv)  # outside any transaction: the event commits on its own
    assert AuditEvent.objects.filter(action="model_version.integrity_failure").count() == 1


def test_builtin_models_are_registered_active_and_idempotently(tiny_copy, tmp_path, monkeypatch):
    root = tmp_path / "artifacts"
    root.mkdir()
    shutil.copytree(tiny_copy, root / "tiny-0.0.1")
    (root / "not-a-model").mkdir()
    monkeypatch.setattr(registry, "builtin_artifacts_root", lambda: root)
    first = registry.register_builtin_models(context=SYSTEM)
    again = registry.register_builtin_models(context=SYSTEM)
    assert [mv.pk for mv in first] == [mv.pk for mv in again]
    assert len(first) == 1 and first[0].status == ModelStatus.ACTIVE
    assert first[0].name == "tiny-test-model"  # from its card
    assert first[0].generation_defaults["max_new_tokens"] == 24
    assert AuditEvent.objects.filter(action="model_version.register").count() == 1


def test_a_retired_builtin_model_stays_retired_on_the_next_start(tiny_copy, tmp_path, monkeypatch):
    root = tmp_path / "artifacts"
    root.mkdir()
    shutil.copytree(tiny_copy, root / "tiny-0.0.1")
    monkeypatch.setattr(registry, "builtin_artifacts_root", lambda: root)
    (shipped,) = registry.register_builtin_models(context=SYSTEM)
    own = register(tiny_copy, name="our-own", specialties=[], kinds=shipped.kinds, status=ModelStatus.ACTIVE)
    shipped.refresh_from_db()
    assert shipped.status == ModelStatus.RETIRED
    registry.register_builtin_models(context=SYSTEM)
    shipped.refresh_from_db(), own.refresh_from_db()
    assert (shipped.status, own.status) == (ModelStatus.RETIRED, ModelStatus.ACTIVE)


def _ship(tiny_copy, root, version):
    """A shipped copy of the tiny model under ``root`` whose card names ``version``."""
    directory = root / f"tiny-{version}"
    shutil.copytree(tiny_copy, directory)
    card = json.loads((directory / "card.json").read_text())
    (directory / "card.json").write_text(json.dumps({**card, "version": version}))
    return directory


def test_of_several_shipped_versions_the_newest_serves_and_the_older_are_kept_retired(
    tiny_copy, tmp_path, monkeypatch
):
    root = tmp_path / "artifacts"
    root.mkdir()
    for version in ("1.9.0", "1.10.0", "1.0.0"):
        _ship(tiny_copy, root, version)
    monkeypatch.setattr(registry, "builtin_artifacts_root", lambda: root)
    shipped = registry.register_builtin_models(context=SYSTEM)
    assert [(mv.version, mv.status) for mv in shipped] == [
        ("1.10.0", ModelStatus.ACTIVE),  # numerically newest, not "1.9.0" by string order
        ("1.9.0", ModelStatus.RETIRED),
        ("1.0.0", ModelStatus.RETIRED),
    ]
    assert registry.default_shipped_model(context=SYSTEM).version == "1.10.0"
    assert AuditEvent.objects.filter(action="model_version.register").count() == 3


def test_a_newer_shipped_version_replaces_the_older_one_serving_on_upgrade(tiny_copy, tmp_path, monkeypatch):
    root = tmp_path / "artifacts"
    root.mkdir()
    _ship(tiny_copy, root, "1.0.0")
    monkeypatch.setattr(registry, "builtin_artifacts_root", lambda: root)
    (old,) = registry.register_builtin_models(context=SYSTEM)
    assert old.status == ModelStatus.ACTIVE
    _ship(tiny_copy, root, "1.1.0")  # the next release ships a better model beside the old one
    new, again = registry.register_builtin_models(context=SYSTEM)
    old.refresh_from_db()
    assert (new.version, new.status) == ("1.1.0", ModelStatus.ACTIVE)
    assert again.pk == old.pk and old.status == ModelStatus.RETIRED
    retire = AuditEvent.objects.get(action="model_version.retire")
    assert retire.details["replaced_by"] == new.pk


def test_a_new_shipped_version_never_overturns_the_departments_own_model(tiny_copy, tmp_path, monkeypatch):
    root = tmp_path / "artifacts"
    root.mkdir()
    _ship(tiny_copy, root, "1.0.0")
    monkeypatch.setattr(registry, "builtin_artifacts_root", lambda: root)
    (old,) = registry.register_builtin_models(context=SYSTEM)
    own = register(tiny_copy, name="our-own", specialties=[], kinds=old.kinds, status=ModelStatus.ACTIVE)
    _ship(tiny_copy, root, "1.1.0")
    new, _ = registry.register_builtin_models(context=SYSTEM)
    own.refresh_from_db()
    assert (new.status, own.status) == (ModelStatus.CANDIDATE, ModelStatus.ACTIVE)
    assert registry.default_shipped_model(context=SYSTEM) is None


def test_files_that_differ_from_the_model_cards_own_list_are_refused(tiny_copy):
    card = json.loads((tiny_copy / "card.json").read_text())
    card["files"] = {"model.onnx": "0" * 64, "config.json": registry.file_sha256(tiny_copy / "config.json")}
    (tiny_copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(ArtifactIntegrityError, match=r"model\.onnx"):
        registry.model_version_register_directory(directory=tiny_copy, actor=None, context=SYSTEM)
    assert not ModelVersion.objects.exists()
