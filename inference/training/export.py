"""Export a Hugging Face causal language model (or an encoder-decoder one) to the artifact layout.

``model.onnx`` is optimum's ONNX export for ``text-generation-with-past`` (a decoder taking
``input_ids``, ``attention_mask``, ``position_ids`` when the architecture needs them and
``past_key_values.*``, returning ``logits`` and ``present.*``), graph-optimised by optimum's
ORTOptimizer for CPU in fp32 (no quantisation: quantised weights changed report facts and broke
batch invariance in the measurements behind issue #5).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from optimum.exporters.onnx import main_export
from optimum.exporters.tasks import TasksManager
from optimum.onnxruntime import ORTOptimizer
from optimum.onnxruntime.configuration import OptimizationConfig

TASK = "text-generation-with-past"
SEQ2SEQ_TASK = "text2text-generation-with-past"
#: ORT's "extended" level: fused LayerNorm, GELU and attention; float32 kept throughout.
OPTIMIZATION_LEVEL = 2


def optimisation_settings() -> dict[str, object]:
    """What the card records about the graph optimisation."""
    return {
        "exporter": "optimum.exporters.onnx.main_export",
        "task": TASK,
        "optimizer": "optimum.onnxruntime.ORTOptimizer",
        "optimization_level": OPTIMIZATION_LEVEL,
        "optimize_for_gpu": False,
        "fp16": False,
        "quantisation": "fp32",
    }


def causal_export_supported(model_type: str) -> bool:
    """Whether optimum can export this Hugging Face ``model_type`` as a decoder with past key values."""
    return _task_supported(model_type, TASK)


def seq2seq_export_supported(model_type: str) -> bool:
    """Whether optimum can export this ``model_type`` as an encoder and a decoder with past key values."""
    return _task_supported(model_type, SEQ2SEQ_TASK)


def _task_supported(model_type: str, task: str) -> bool:
    try:
        tasks = TasksManager.get_supported_tasks_for_model_type(
            model_type, exporter="onnx", library_name="transformers"
        )
    except (KeyError, ValueError):
        return False
    return task in tasks


def seq2seq_onnx_export(hf_dir: Path, out_dir: Path) -> None:
    """Export an encoder-decoder model saved in ``hf_dir`` into ``out_dir`` in the runtime's layout.

    ``encoder_model.onnx`` and ``model.onnx`` (optimum's merged decoder: both the first step and the
    steps with past in one graph, so the weights are stored once), plus the configs. onnxruntime
    optimises the graphs when it loads them. Raises whatever optimum raises for a model it cannot export.
    """
    with tempfile.TemporaryDirectory(prefix="onnx-export-") as scratch:
        exported = Path(scratch) / "exported"
        main_export(str(hf_dir), output=str(exported), task=SEQ2SEQ_TASK, do_validation=False, device="cpu")
        merged, encoder = exported / "decoder_model_merged.onnx", exported / "encoder_model.onnx"
        if not merged.is_file() or not encoder.is_file() or any(exported.glob("*.onnx_data")):
            raise ValueError("the export did not produce a self-contained encoder and merged decoder")
        shutil.copyfile(merged, out_dir / "model.onnx")
        shutil.copyfile(encoder, out_dir / "encoder_model.onnx")
        for name in ("config.json", "generation_config.json"):
            if (exported / name).is_file():
                shutil.copyfile(exported / name, out_dir / name)


def onnx_export(hf_dir: Path, out_dir: Path, *, optimisation_required: bool = True) -> bool:
    """Export the model saved in ``hf_dir`` and write the optimised graph and configs into ``out_dir``.

    Returns whether the graph was optimised. ORTOptimizer knows only some architectures: a hospital's
    model of another kind (``optimisation_required=False``) is served from the plain export, which
    onnxruntime still optimises when it loads it. ``out_dir`` must exist; files there with the same
    names are replaced. Raises whatever optimum raises for a model it cannot export.
    """
    with tempfile.TemporaryDirectory(prefix="onnx-export-") as scratch:
        exported, optimised = Path(scratch) / "exported", Path(scratch) / "optimised"
        main_export(
            str(hf_dir),
            output=str(exported),
            task=TASK,
            do_validation=False,
            device="cpu",
            no_post_process=False,
        )
        source = exported
        try:
            ORTOptimizer.from_pretrained(str(exported)).optimize(
                save_dir=str(optimised),
                optimization_config=OptimizationConfig(
                    optimization_level=OPTIMIZATION_LEVEL, optimize_for_gpu=False, fp16=False
                ),
            )
            source = optimised
        except (NotImplementedError, KeyError, ValueError):
            if optimisation_required:
                raise
        graphs = sorted(source.glob("*.onnx"))
        if len(graphs) != 1 or any(source.glob("*.onnx_data")):
            raise ValueError("the export did not produce exactly one self-contained ONNX graph")
        shutil.copyfile(graphs[0], out_dir / "model.onnx")
        for name in ("config.json", "generation_config.json"):
            config = optimised / name if (optimised / name).is_file() else exported / name
            if config.is_file():
                shutil.copyfile(config, out_dir / name)
    return source == optimised
