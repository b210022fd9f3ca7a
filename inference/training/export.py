"""Export a Hugging Face causal language model to the project's artifact layout with optimum.

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
    try:
        tasks = TasksManager.get_supported_tasks_for_model_type(
            model_type, exporter="onnx", library_name="transformers"
        )
    except (KeyError, ValueError):
        return False
    return TASK in tasks


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
