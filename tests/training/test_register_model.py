"""``manage.py register_model``: a hospital's own model, ONNX as is or exported from Hugging Face."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from inference import registry
from inference.prompts import build_prompt
from inference.training.evaluate import GreedyDecoder
from portal.records.models import ModelStatus, ModelVersion
from tests.model_fixtures import build_tiny_model

INPUTS = {
    "specialty": "chest",
    "modality": "CR",
    "body_part": "CHEST",
    "study_description": "XR CHEST 2 VIEWS",
    "indication": "Cough.",
    "prior_report_accession": None,
    "findings": [{"concept": "pleural_effusion", "display": "pleural effusion", "laterality": "left"}],
    "negatives": [{"concept": "pneumothorax", "display": "pneumothorax"}],
}


@pytest.fixture
def var_dir(settings, tmp_path) -> Path:
    """A private $CONCORDANCE_VAR_DIR, so exported models of one test never meet another's."""
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR


@pytest.fixture
def hf_dir(tmp_path) -> Path:
    """A tiny random Hugging Face GPT-2 (saved with save_pretrained) with its tokenizer.json."""
    target = tmp_path / "hospital-gpt"
    shutil.copytree(build_tiny_model().torch_dir, target)
    return target


@pytest.fixture
def onnx_dir(tmp_path) -> Path:
    """An ONNX artifact directory without a model card."""
    target = tmp_path / "hospital-onnx"
    shutil.copytree(build_tiny_model().artifact_dir, target)
    (target / "card.json").unlink()
    return target


def _register(*args: str, **options) -> str:
    stdout = io.StringIO()
    call_command("register_model", *args, stdout=stdout, **options)
    return stdout.getvalue()


def _snapshot(directory: Path) -> dict[str, str]:
    return registry.artifact_hashes(directory) if directory.is_dir() else {}


@pytest.mark.django_db
def test_it_exports_a_hugging_face_model_and_registers_it(var_dir, hf_dir):
    before = _snapshot(hf_dir)
    output = _register(str(hf_dir), "--specialty", "chest", "--name", "hospital-gpt", "--version", "2.1.0")

    mv = ModelVersion.objects.get(name="hospital-gpt", version="2.1.0")
    directory = registry.artifact_dir_of(mv)
    assert directory == (var_dir / "models" / "hospital-gpt-2.1.0").resolve()
    assert {"model.onnx", "config.json", "tokenizer.json", "card.json"} <= set(mv.artifacts)
    assert mv.artifacts == registry.artifact_hashes(directory)
    assert mv.status == ModelStatus.CANDIDATE and mv.specialties == ["chest"] and mv.kinds == ["report_draft"]
    card = json.loads((directory / "card.json").read_text(encoding="utf-8"))
    assert card["name"] == "hospital-gpt" and card["architecture"] == "causal"
    assert card["files"]["model.onnx"] == mv.artifacts["model.onnx"]
    assert "exported here with optimum" in card["lineage"]["source"]
    assert _snapshot(hf_dir) == before, "the hospital's directory is left untouched"
    assert AuditEvent.objects.filter(action="model_version.register", object_id=str(mv.pk)).exists()
    assert "registered hospital-gpt 2.1.0" in output
    registry.verify_artifacts(mv)
    prompt = build_prompt("report_draft", INPUTS)
    first, again = GreedyDecoder(directory), GreedyDecoder(directory)
    assert first.generate_ids(prompt, 8) == again.generate_ids(prompt, 8)


@pytest.mark.django_db
def test_an_onnx_directory_is_taken_as_is_and_gets_a_card(var_dir, onnx_dir):
    model_bytes = registry.file_sha256(onnx_dir / "model.onnx")
    _register(
        str(onnx_dir), "--specialty", "all", "--kind", "report_draft", "--kind", "history_summary",
        "--version", "1.0.0", "--activate",
    )  # fmt: skip
    mv = ModelVersion.objects.get(name="hospital-onnx", version="1.0.0")
    assert registry.artifact_dir_of(mv) == onnx_dir.resolve()
    assert mv.status == ModelStatus.ACTIVE
    assert mv.kinds == ["report_draft", "history_summary"] and len(mv.specialties) == 5
    card = json.loads((onnx_dir / "card.json").read_text(encoding="utf-8"))
    assert card["files"]["model.onnx"] == model_bytes == mv.artifacts["model.onnx"]
    assert "card.json" in mv.artifacts
    assert not (var_dir / "models").exists(), "nothing copied or exported"


@pytest.mark.django_db
def test_an_existing_card_names_the_version(var_dir, onnx_dir):
    card = {"name": "from-card", "version": "7.0.0", "architecture": "causal", "kinds": ["prior_comparison"]}
    (onnx_dir / "card.json").write_text(json.dumps(card), encoding="utf-8")
    _register(str(onnx_dir), "--specialty", "neuro")
    mv = ModelVersion.objects.get(name="from-card", version="7.0.0")
    assert mv.kinds == ["prior_comparison"] and mv.specialties == ["neuro"]
    assert json.loads((onnx_dir / "card.json").read_text(encoding="utf-8")) == card, "the card is kept"


def _bad_directory(case: str, tmp: Path, hf: Path, onnx: Path) -> Path:
    """Make the directory of one refusal case."""

    def with_config(name: str, config: dict | str) -> Path:
        (tmp / name).mkdir()
        text = config if isinstance(config, str) else json.dumps(config)
        (tmp / name / "config.json").write_text(text, encoding="utf-8")
        return tmp / name

    if case == "missing":
        return tmp / "does-not-exist"
    if case == "a file":
        (tmp / "file.bin").write_bytes(b"x")
        return tmp / "file.bin"
    if case == "empty":
        (tmp / "empty").mkdir()
        return tmp / "empty"
    if case == "encoder only":
        return with_config("bert", {"model_type": "bert"})
    if case == "seq2seq":
        return with_config("t5", {"model_type": "t5", "is_encoder_decoder": True})
    if case == "hostile type":
        return with_config("evil", {"model_type": "<script>alert(1)</script>' OR 1=1 --"})
    if case == "config not json":
        return with_config("junk", "{nope")
    if case == "config not an object":
        return with_config("list", "[1, 2]")
    if case == "no weights":
        (hf / "model.safetensors").unlink()
        return hf
    if case == "hf without tokenizer":
        (hf / "tokenizer.json").unlink()
        return hf
    if case == "onnx without tokenizer":
        (onnx / "tokenizer.json").unlink()
        return onnx
    if case == "onnx not a graph":
        (onnx / "model.onnx").write_bytes(b"not onnx")
        return onnx
    raise AssertionError(case)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "is not a directory"),
        ("a file", "is not a directory"),
        ("empty", "neither model.onnx nor"),
        ("encoder only", "Unsupported architecture"),
        ("seq2seq", "no model weights"),  # encoder-decoder models are served; this one has no weights
        ("hostile type", "Unsupported architecture"),
        ("config not json", "not readable JSON"),
        ("config not an object", "must hold a JSON object"),
        ("no weights", "no model weights"),
        ("hf without tokenizer", "lacks tokenizer.json"),
        ("onnx without tokenizer", "lacks tokenizer.json"),
        ("onnx not a graph", "cannot load"),
    ],
)
def test_bad_directories_are_refused_with_nothing_registered(
    var_dir, tmp_path, hf_dir, onnx_dir, case, message
):
    path = _bad_directory(case, tmp_path, hf_dir, onnx_dir)
    before = _snapshot(path)
    with pytest.raises(CommandError, match=message):
        _register(str(path), "--specialty", "chest", "--version", "1.0.0")
    assert not ModelVersion.objects.exists()
    assert not AuditEvent.objects.filter(action="model_version.register").exists()
    assert _snapshot(path) == before, "no card or file written"
    assert not (var_dir / "models").exists() or not any((var_dir / "models").iterdir())


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--specialty", "cardiology"], "Unknown specialty"),
        (["--specialty", "chest", "--version", "../../etc"], "may hold letters"),
        (["--specialty", "chest", "--name", "a b; DROP TABLE x"], "may hold letters"),
        (["--specialty", "chest", "--kind", "poem"], "invalid choice"),
    ],
)
def test_bad_options_are_refused(var_dir, onnx_dir, args, message):
    with pytest.raises(CommandError, match=message):
        _register(str(onnx_dir), *args)
    assert not ModelVersion.objects.exists() and not (onnx_dir / "card.json").exists()


@pytest.mark.django_db
def test_a_version_is_never_registered_twice(var_dir, hf_dir):
    ModelVersion.objects.create(name="hospital-gpt", version="1.0.0")
    with pytest.raises(CommandError, match="already registered"):
        _register(str(hf_dir), "--specialty", "chest", "--version", "1.0.0")
    assert not (var_dir / "models").exists()


def _files(directory: Path) -> dict[str, bytes]:
    """Every entry of a directory with its bytes (links as their target's), without refusing links."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("card", "message"),
    [
        ({"kinds": "report_draft"}, "kinds must be a list of names"),
        ({"kinds": [{"kind": "report_draft"}]}, "kinds must be a list of names"),
        ({"kinds": ["report_draft", "horoscope"]}, "Unknown kind horoscope"),
        ({"metrics": [0.9, 0.8]}, "metrics must be a JSON object"),
        ({"lineage": "trust me"}, "lineage must be a JSON object"),
        ({"generation_defaults": ["greedy"]}, "generation_defaults must be a JSON object"),
        ({"name": "<script>alert(1)</script>"}, "may hold letters"),
        ({"version": "1.0; DROP TABLE records_modelversion"}, "may hold letters"),
        ({"files": {"model.onnx": "0" * 64}}, "differ from the model card: model.onnx"),
        ({"quantisation": "int8"}, "cannot be registered as 'fp32'"),
        ("[1, 2]", "must hold a JSON object"),
        ("{not json", "not readable JSON"),
    ],
)
def test_bad_model_cards_are_refused_with_nothing_registered_or_written(var_dir, onnx_dir, card, message):
    text = card if isinstance(card, str) else json.dumps({"name": "hospital", "version": "1.0.0", **card})
    (onnx_dir / "card.json").write_text(text, encoding="utf-8")
    before = _files(onnx_dir)

    with pytest.raises(CommandError, match=message):
        _register(str(onnx_dir), "--specialty", "chest")

    assert not ModelVersion.objects.exists()
    assert not AuditEvent.objects.filter(action="model_version.register").exists()
    assert _files(onnx_dir) == before


@pytest.mark.django_db
@pytest.mark.parametrize("with_card", [False, True])
def test_a_symbolic_link_in_the_model_directory_is_refused_and_the_card_is_not_left_behind(
    var_dir, onnx_dir, tmp_path, with_card
):
    if with_card:
        (onnx_dir / "card.json").write_text(json.dumps({"name": "linked", "version": "1"}), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("{}", encoding="utf-8")
    (onnx_dir / "notes.json").symlink_to(elsewhere)
    before = _files(onnx_dir)

    with pytest.raises(CommandError, match="symbolic link"):
        _register(str(onnx_dir), "--specialty", "chest", "--version", "1.0.0")

    assert not ModelVersion.objects.exists()
    assert _files(onnx_dir) == before  # a card written for the registration was removed again
