"""A GPT-2 decoder rebuilt as one ONNX graph of fused kernels, from the weights of an existing export.

Why: the optimum export of GPT-2 runs attention as ~40 small kernels per layer (shape arithmetic,
transposes, masks built at run time) and onnxruntime's transformer optimizer does not recognise that
pattern (it fuses 0 attention blocks in it, measured: docs/benchmarks.md); the onnxruntime-genai model
builder has no GPT-2. For a 3 M-parameter model the step overhead, not the arithmetic, is the cost. So
the same weights are written here into the graph onnxruntime runs best on CPU and GPU:

* per layer: LayerNormalization, one QKV MatMul, ``com.microsoft.MultiHeadAttention`` (bias, causal
  mask, key padding mask and KV cache in ONE kernel), the output projection, the MLP with ``FastGelu``
  (GPT-2's tanh GELU), residual adds (onnxruntime fuses them into SkipLayerNormalization on load);
* logits for the LAST position only: generation reads nothing else, and the prompt step no longer
  multiplies every prompt position by the vocabulary. The static-cache graph returns the last
  :data:`LOGIT_POSITIONS` positions' (at most as many as it is fed), so the runtime can check several
  guessed tokens in one step (speculative decoding, :mod:`inference.runtime.speculation`); the count
  is recorded in the model's metadata (:data:`LOGIT_POSITIONS_KEY`).

Inputs and outputs keep the optimum names (``input_ids``, ``attention_mask``, ``position_ids``,
``past_key_values.{i}.key|value`` -> ``logits``, ``present.{i}.key|value``), so the runtime serves it
like any export. The graph is checked token for token against the graph it came from before it is
written (:func:`fused_artifact_build`); pure numpy + onnx, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# The model metadata key (ONNX ``metadata_props``) the runtime reads the count of logit positions from.
from inference.runtime.engine import LOGIT_POSITIONS_KEY

#: The graph names recorded in a card, so a reader knows which layout the model.onnx has.
GRAPH_NAME = "gpt2-fused-mha"
#: The static-cache graph returning the logits of the last LOGIT_POSITIONS positions. Its first layout
#: (``gpt2-fused-gqa-static-cache``, concordance-draft 1.1.1) returned the last position's only; the
#: runtime serves both (speculative steps only where the graph returns more than one position).
STATIC_GRAPH_NAME = "gpt2-fused-gqa-static-cache-last4"
#: Positions whose logits a static-cache step returns: the fed token and up to three guesses after it.
LOGIT_POSITIONS = 4
OPSET = 17
_MS_DOMAIN = "com.microsoft"


class FusionError(ValueError):
    """The source graph is not a GPT-2 export whose weights can be found, or the fused graph disagrees."""


def gpt2_weights_from_onnx(model: onnx.ModelProto, layers: int) -> dict[str, np.ndarray]:
    """GPT-2 parameters (Hugging Face names) found in an optimum export, optimised or not.

    optimum names the initialisers after the PyTorch parameters, but the optimiser merges identical
    ones (untrained biases and norms) and folds biases and norms into fused nodes (Gemm, FastGelu,
    SkipLayerNormalization), so each is found from the node that consumes its matrix, and the norms
    from their order in the graph. Raises :class:`FusionError` when a parameter cannot be found.
    """
    graph = model.graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    # The exporter shares identical initialisers (untrained norms and biases) through Identity nodes.
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    found = {name: value for name, value in weights.items() if name.startswith("transformer.")}
    found = {name: value for name, value in found.items() if name.endswith((".weight", ".bias"))}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def bias_after(matrix: str) -> np.ndarray | None:
        node = consumers[matrix][0]
        if node.op_type == "Gemm":
            if any(a.name == "transB" and helper.get_attribute_value(a) for a in node.attribute):
                raise FusionError(f"{matrix} is used transposed")
            return weights.get(node.input[2])
        follower = consumers[node.output[0]][0]
        if follower.op_type == "Add":
            return next((weights[i] for i in follower.input if i in weights), None)
        if follower.op_type in ("FastGelu", "BiasGelu"):
            return weights.get(follower.input[1])
        if follower.op_type == "SkipLayerNormalization" and len(follower.input) > 4:
            return weights.get(follower.input[4])
        return None

    for layer in range(layers):
        for module in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
            matrix = f"transformer.h.{layer}.{module}.weight"
            if matrix in consumers:
                bias = bias_after(matrix)
                if bias is not None:
                    found[f"transformer.h.{layer}.{module}.bias"] = bias
    norms = [n for n in graph.node if n.op_type in ("LayerNormalization", "SkipLayerNormalization")]
    names = [f"transformer.h.{layer}.{which}" for layer in range(layers) for which in ("ln_1", "ln_2")]
    names.append("transformer.ln_f")
    if len(norms) == len(names):
        for node, name in zip(norms, names, strict=True):
            offset = 1 if node.op_type == "LayerNormalization" else 2
            for part, index in (("weight", offset), ("bias", offset + 1)):
                if node.input[index] in weights:
                    found[f"{name}.{part}"] = weights[node.input[index]]
    missing = [name for name in _gpt2_parameter_names(layers) if name not in found]
    if missing:
        raise FusionError(f"the graph lacks {len(missing)} GPT-2 parameters, e.g. {', '.join(missing[:3])}")
    return found


def _gpt2_parameter_names(layers: int) -> list[str]:
    names = ["transformer.wte.weight", "transformer.wpe.weight"]
    names += ["transformer.ln_f.weight", "transformer.ln_f.bias"]
    for layer in range(layers):
        prefix = f"transformer.h.{layer}."
        for module in ("ln_1", "ln_2", "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
            names += [f"{prefix}{module}.weight", f"{prefix}{module}.bias"]
    return names


class _GraphBuilder:
    """Collects nodes and initialisers; weights are looked up by their Hugging Face names."""

    def __init__(self, weights: Mapping[str, np.ndarray], *, static_cache: bool = False) -> None:
        self.weights = weights
        self.static_cache = static_cache
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._stored: set[str] = set()

    def param(self, name: str, value: np.ndarray | None = None) -> str:
        """The initialiser ``name`` (stored once; ``value`` overrides the weight of that name)."""
        if name not in self._stored:
            array = self.weights[name] if value is None else value
            self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
            self._stored.add(name)
        return name

    def ints(self, name: str, values: Sequence[int]) -> str:
        """An int64 constant."""
        self.initializers.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))
        return name

    def node(self, op: str, inputs: Sequence[str], outputs: Sequence[str], **attrs: Any) -> str:
        """Append one node; returns its first output's name."""
        domain = attrs.pop("domain", "")
        name = f"{op}_{len(self.nodes)}"
        node = helper.make_node(op, list(inputs), list(outputs), name=name, domain=domain, **attrs)
        self.nodes.append(node)
        return outputs[0]

    def skip_norm(self, x: str, residual: str, norm: str, bias: str, out: str, eps: float) -> tuple[str, str]:
        """``LayerNorm(x + residual + bias)`` in one kernel; returns (normalised, the sum)."""
        self.node(
            "SkipLayerNormalization",
            [x, residual, self.param(f"{norm}.weight"), self.param(f"{norm}.bias"), self.param(bias)],
            [f"{out}.norm", "", "", f"{out}.sum"],
            domain=_MS_DOMAIN,
            epsilon=eps,
        )
        return f"{out}.norm", f"{out}.sum"


def _layer(
    g: _GraphBuilder, layer: int, normed: str, residual: str, heads: int, eps: float
) -> tuple[str, str]:
    """One transformer block from its normalised input and the residual stream.

    Returns the next block's normalised input (or the final norm's, after the last block) and the
    residual stream after this block.
    """
    p, h = f"transformer.h.{layer}.", f"h{layer}"
    qkv = g.node("MatMul", [normed, g.param(p + "attn.c_attn.weight")], [f"{h}.qkv"])
    present = [f"present.{layer}.key", f"present.{layer}.value"]
    past = [f"past_key_values.{layer}.key", f"past_key_values.{layer}.value"]
    if g.static_cache:
        # Packed QKV (GPT-2 lays it out [q | k | v], as GroupQueryAttention reads it); the new keys and
        # values are written into the preallocated cache in place, at each row's own length.
        packed = g.node("Add", [qkv, g.param(p + "attn.c_attn.bias")], [f"{h}.qkvb"])
        attention = g.node(
            "GroupQueryAttention",
            [packed, "", "", *past, "seqlens_k", "total_sequence_length"],
            [f"{h}.attn", *present],
            domain=_MS_DOMAIN,
            num_heads=heads,
            kv_num_heads=heads,
        )
    else:
        g.node("Split", [qkv, "split3"], [f"{h}.q", f"{h}.k", f"{h}.v"], axis=-1)
        inputs = [
            f"{h}.q",
            f"{h}.k",
            f"{h}.v",
            g.param(p + "attn.c_attn.bias"),
            "key_padding_mask",
            "",
            *past,
        ]
        attention = g.node(
            "MultiHeadAttention",
            inputs,
            [f"{h}.attn", *present],
            domain=_MS_DOMAIN,
            num_heads=heads,
            unidirectional=1,
        )
    projected = g.node("MatMul", [attention, g.param(p + "attn.c_proj.weight")], [f"{h}.proj"])
    mlp_in, middle = g.skip_norm(projected, residual, p + "ln_2", p + "attn.c_proj.bias", f"{h}.mid", eps)
    fc = g.node("MatMul", [mlp_in, g.param(p + "mlp.c_fc.weight")], [f"{h}.fc"])
    gelu = g.node("FastGelu", [fc, g.param(p + "mlp.c_fc.bias")], [f"{h}.gelu"], domain=_MS_DOMAIN)
    mlp = g.node("MatMul", [gelu, g.param(p + "mlp.c_proj.weight")], [f"{h}.mlp"])
    last = (
        f"transformer.h.{layer + 1}.ln_1" if f"transformer.h.{layer + 1}.ln_1.weight" in g.weights else None
    )
    return g.skip_norm(mlp, middle, last or "transformer.ln_f", p + "mlp.c_proj.bias", f"{h}.out", eps)


def _check_config(config: Mapping[str, Any]) -> None:
    if config.get("model_type") != "gpt2":
        raise FusionError(f"only GPT-2 graphs are fused here, not {config.get('model_type')!r}")
    if config.get("activation_function", "gelu_new") != "gelu_new":
        raise FusionError("only GPT-2 with the tanh GELU (gelu_new) is fused here")
    if config.get("scale_attn_by_inverse_layer_idx") or config.get("reorder_and_upcast_attn"):
        raise FusionError("only GPT-2 with the standard attention scale is fused here")


def _io(
    layers: int, heads: int, head_dim: int, vocab: int, static_cache: bool
) -> tuple[list[Any], list[Any]]:
    """The graph's inputs and outputs (names and symbolic shapes).

    The optimum export's, or with ``static_cache`` the cache layout of GroupQueryAttention: no
    attention mask but each row's length (``seqlens_k``: cached + new tokens - 1, int32) and the
    batch's longest (``total_sequence_length``), and a cache as long as the context window whose
    present outputs are bound to the same memory as the past inputs.
    """
    tensor = helper.make_tensor_value_info
    batch, step, total = "batch_size", "sequence_length", "total_sequence_length"
    inputs = [tensor("input_ids", TensorProto.INT64, [batch, step])]
    if static_cache:
        inputs.append(tensor("seqlens_k", TensorProto.INT32, [batch]))
        inputs.append(tensor("total_sequence_length", TensorProto.INT32, []))
        total = "max_sequence_length"
    else:
        inputs.append(tensor("attention_mask", TensorProto.INT64, [batch, total]))
    inputs.append(tensor("position_ids", TensorProto.INT64, [batch, step]))
    # The static graph returns up to LOGIT_POSITIONS positions (fewer when fed fewer tokens).
    outputs = [tensor("logits", TensorProto.FLOAT, [batch, "logit_positions" if static_cache else 1, vocab])]
    cache = [batch, heads, "max_sequence_length" if static_cache else "past_sequence_length", head_dim]
    for layer in range(layers):
        for part in ("key", "value"):
            inputs.append(tensor(f"past_key_values.{layer}.{part}", TensorProto.FLOAT, cache))
            present = [batch, heads, total, head_dim]
            outputs.append(tensor(f"present.{layer}.{part}", TensorProto.FLOAT, present))
    return inputs, outputs


def gpt2_fused_model(
    weights: Mapping[str, np.ndarray], config: Mapping[str, Any], *, static_cache: bool = False
) -> onnx.ModelProto:
    """The fused graph (see module doc) of a GPT-2 with these Hugging Face-named weights and config."""
    _check_config(config)
    layers, heads, width = int(config["n_layer"]), int(config["n_head"]), int(config["n_embd"])
    eps = float(config.get("layer_norm_epsilon", 1e-5))
    g = _GraphBuilder(weights, static_cache=static_cache)
    if not static_cache:
        g.ints("split3", [width, width, width])
        g.node("Cast", ["attention_mask"], ["key_padding_mask"], to=TensorProto.INT32)
    tokens = g.node("Gather", [g.param("transformer.wte.weight"), "input_ids"], ["tok"])
    places = g.node("Gather", [g.param("transformer.wpe.weight"), "position_ids"], ["pos"])
    residual = g.node("Add", [tokens, places], ["h_in"])
    normed = g.node(
        "LayerNormalization",
        [residual, g.param("transformer.h.0.ln_1.weight"), g.param("transformer.h.0.ln_1.bias")],
        ["h0.ln1"],
        axis=-1,
        epsilon=eps,
    )
    for layer in range(layers):
        normed, residual = _layer(g, layer, normed, residual, heads, eps)
    # Only the last position's logits (static cache: the last LOGIT_POSITIONS, to check guesses).
    positions = LOGIT_POSITIONS if static_cache else 1
    bounds = [g.ints("last_start", [-positions]), g.ints("last_end", [2**62]), g.ints("axis1", [1])]
    last = g.node("Slice", [normed, *bounds], ["h_last"])
    # The LM head is tied to the token embedding: its transpose is stored once, laid out for MatMul.
    head = g.param("lm_head.weight_t", np.asarray(weights["transformer.wte.weight"]).T)
    g.node("MatMul", [last, head], ["logits"])
    vocab = int(weights["transformer.wte.weight"].shape[0])
    inputs, outputs = _io(layers, heads, width // heads, vocab, static_cache)
    name = STATIC_GRAPH_NAME if static_cache else GRAPH_NAME
    graph = helper.make_graph(g.nodes, name, inputs, outputs, initializer=g.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(_MS_DOMAIN, 1)],
        producer_name="concordance",
    )
    model.ir_version = 8
    if static_cache:
        helper.set_model_props(model, {LOGIT_POSITIONS_KEY: str(LOGIT_POSITIONS)})
    return model


def fuse_graph_file(
    source: Path, config: Mapping[str, Any], target: Path, *, static_cache: bool = False
) -> None:
    """Write the fused graph of the GPT-2 export at ``source`` to ``target`` (same weights)."""
    weights = gpt2_weights_from_onnx(onnx.load(str(source)), int(config["n_layer"]))
    onnx.save(gpt2_fused_model(weights, config, static_cache=static_cache), str(target))
