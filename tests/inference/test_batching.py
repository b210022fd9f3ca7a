"""Continuous batching: rows leave when done, waiting prompts join, a memory budget; same text always."""

from __future__ import annotations

import pytest

from inference import runtime
from inference.prompts import build_prompt
from inference.runtime.batching import ContinuousBatcher
from tests.inference.test_runtime import varied_inputs
from tests.model_fixtures import TINY_MAX_NEW_TOKENS

pytestmark = pytest.mark.django_db


@pytest.fixture
def engine_and_prompts(tiny_model_version):
    engine = runtime.load(tiny_model_version)
    prompts = engine.encode([build_prompt("report_draft", x) for x in varied_inputs(14)])
    alone = [engine.generate_ids([p], TINY_MAX_NEW_TOKENS)[0] for p in prompts]
    return engine, prompts, alone


def run(engine, prompts, **options):
    batcher = ContinuousBatcher(engine, **options)
    answers = batcher.run(prompts, [engine.budget(len(p), TINY_MAX_NEW_TOKENS) for p in prompts])
    return batcher, answers


@pytest.mark.parametrize("max_rows", [1, 3, 4, 32])
def test_waiting_prompts_join_the_running_batch_with_the_same_answers(engine_and_prompts, max_rows):
    engine, prompts, alone = engine_and_prompts
    batcher, answers = run(engine, prompts, max_rows=max_rows)
    assert answers == alone
    # Rows whose first token is EOS leave at once, so a roomy batch may never hold every prompt.
    assert batcher.peak_rows == max_rows if max_rows < 14 else batcher.peak_rows > 4


def test_rows_of_different_ages_share_a_step(engine_and_prompts, monkeypatch):
    engine, prompts, alone = engine_and_prompts
    widths, real_step = [], engine.step

    def recording_step(input_ids, mask, positions, past):
        widths.append((input_ids.shape, mask.shape))
        return real_step(input_ids, mask, positions, past)

    monkeypatch.setattr(engine, "step", recording_step)
    _, answers = run(engine, prompts, max_rows=4)
    assert answers == alone
    prefills = [shape for shape, _ in widths if shape[1] > 1]
    # Prompts were admitted after the first group, while other rows were still decoding.
    assert len(prefills) > 1 and sum(shape[0] for shape in prefills) == len(prompts)


def test_a_small_memory_budget_limits_the_rows_and_evicts_without_changing_the_text(engine_and_prompts):
    engine, prompts, alone = engine_and_prompts
    longest = max(len(p) for p in prompts) + TINY_MAX_NEW_TOKENS
    one_row = 2 * longest * engine.kv_bytes_per_token
    batcher, answers = run(engine, prompts, max_rows=32, memory_budget_bytes=3 * one_row)
    assert answers == alone
    assert batcher.peak_cache_bytes <= 3 * one_row and 1 < batcher.peak_rows < len(prompts)
    tight, answers = run(engine, prompts, max_rows=32, memory_budget_bytes=1)  # one row at a time
    assert answers == alone and tight.peak_rows == 1


def test_rows_are_evicted_when_their_growth_passes_the_budget(engine_and_prompts):
    engine, prompts, alone = engine_and_prompts
    shortest = min(len(p) for p in prompts)
    # Room for the first prompts as admitted, not for their answers: some rows must be evicted.
    budget = 2 * 4 * (shortest + 4) * engine.kv_bytes_per_token
    batcher, answers = run(engine, sorted(prompts, key=len), max_rows=8, memory_budget_bytes=budget)
    assert answers == [alone[prompts.index(p)] for p in sorted(prompts, key=len)]
    assert batcher.evictions > 0 and batcher.peak_cache_bytes <= budget


def test_the_runtime_reads_the_memory_budget_setting(tiny_model_version, settings):
    settings.INFERENCE_MEMORY_BUDGET_MB = 0
    assert runtime.memory_budget_bytes() is None
    settings.INFERENCE_MEMORY_BUDGET_MB = 3
    assert runtime.memory_budget_bytes() == 3 * 1024 * 1024
    inputs = varied_inputs(6)
    settings.INFERENCE_MEMORY_BUDGET_MB = 1
    small = runtime.generate(tiny_model_version, "report_draft", inputs)
    settings.INFERENCE_MEMORY_BUDGET_MB = 64
    assert [g.text for g in small] == [
        g.text for g in runtime.generate(tiny_model_version, "report_draft", inputs)
    ]


def test_an_empty_prompt_is_refused(engine_and_prompts):
    engine, prompts, _ = engine_and_prompts
    with pytest.raises(runtime.engine.EngineError):
        engine.generate_ids([prompts[0], []], 4)


# --- the static KV cache (GroupQueryAttention graph, slots written in place) -----------------------


@pytest.fixture
def static_engine(engine_and_prompts, tmp_path):
    """The tiny model's fused graph with a static cache, as an engine, beside the original's answers."""
    onnx = pytest.importorskip("onnx")  # noqa: F841 - the train extra builds the graph
    import json
    import shutil

    from inference.runtime.engine import DecoderEngine
    from inference.training.fused_graph import fuse_graph_file
    from tests.model_fixtures import build_tiny_model

    source = build_tiny_model().artifact_dir
    for name in ("config.json", "generation_config.json", "tokenizer.json"):
        shutil.copyfile(source / name, tmp_path / name)
    config = json.loads((source / "config.json").read_text())
    fuse_graph_file(source / "model.onnx", config, tmp_path / "model.onnx", static_cache=True)
    _, prompts, alone = engine_and_prompts
    return DecoderEngine(tmp_path), prompts, alone


@pytest.mark.parametrize("max_rows", [1, 3, 32])
def test_the_static_cache_gives_the_same_answers_in_any_company(static_engine, max_rows):
    engine, prompts, alone = static_engine
    assert engine.static_cache
    assert engine.generate_ids(prompts, TINY_MAX_NEW_TOKENS, max_rows=max_rows) == alone
    assert engine.generate_ids(prompts[::-1], TINY_MAX_NEW_TOKENS, max_rows=max_rows) == alone[::-1]


def test_a_static_cache_call_decodes_at_most_running_rows_at_once(static_engine, monkeypatch):
    """A batch of 32 prompts runs ``running_rows`` rows; the others join as rows finish."""
    from inference.runtime.static_cache import SlotBatcher

    engine, prompts, alone = static_engine
    assert engine.running_rows == runtime.engine.DEFAULT_RUNNING_ROWS
    peaks = []
    run = SlotBatcher.run

    def recording_run(self, *args):
        answers = run(self, *args)
        peaks.append(self.peak_rows)
        return answers

    monkeypatch.setattr(SlotBatcher, "run", recording_run)
    engine.running_rows = 3
    assert len(prompts) > 3
    assert engine.generate_ids(prompts, TINY_MAX_NEW_TOKENS, max_rows=32) == alone
    assert engine.generate_ids(prompts, TINY_MAX_NEW_TOKENS, max_rows=2) == alone  # the batch size still caps
    assert peaks == [3, 2]


def test_the_runtime_reads_the_running_rows_setting(tiny_model_version, settings):
    settings.INFERENCE_RUNNING_ROWS = 5
    runtime.clear_cache()
    try:
        assert runtime.running_rows() == 5 and runtime.load(tiny_model_version).running_rows == 5
        settings.INFERENCE_RUNNING_ROWS = 0
        assert runtime.running_rows() == 1  # one row always runs
    finally:
        runtime.clear_cache()


def test_the_static_cache_slots_fit_the_memory_budget(static_engine):
    from inference.runtime.static_cache import SlotBatcher, slot_count

    engine, prompts, alone = static_engine
    budgets = [engine.budget(len(p), TINY_MAX_NEW_TOKENS) for p in prompts]
    length = max(len(p) + b for p, b in zip(prompts, budgets, strict=True))
    one_slot = length * engine.kv_bytes_per_token
    assert slot_count(32, length, engine.kv_bytes_per_token, 3 * one_slot) == 3
    assert slot_count(32, length, engine.kv_bytes_per_token, 1) == 1  # one row always runs
    assert slot_count(4, length, engine.kv_bytes_per_token, None) == 4
    batcher = SlotBatcher(engine, max_rows=32, memory_budget_bytes=3 * one_slot)
    assert batcher.run(prompts, budgets) == alone
    assert batcher.peak_rows == 3 and batcher.cache_bytes <= 3 * one_slot


def test_a_static_cache_graph_without_position_ids_is_refused(static_engine, tmp_path):
    import onnx

    from inference.runtime.engine import DecoderEngine, EngineError

    model = onnx.load(str(tmp_path / "model.onnx"))
    kept = [i for i in model.graph.input if i.name != "position_ids"]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "generation_config.json", "tokenizer.json"):
        (broken / name).write_bytes((tmp_path / name).read_bytes())
    onnx.save(model, str(broken / "model.onnx"))
    with pytest.raises(Exception) as failure:  # onnxruntime refuses the graph, or the engine does
        DecoderEngine(broken)
    assert failure.type is EngineError or "position_ids" in str(failure.value)


def test_the_static_cache_binds_each_view_once_not_each_step(static_engine, monkeypatch):
    """Prefill binds one run per prompt, decoding one per count of running rows and of tokens fed a
    row (one, or the pending token and its guesses when one row runs); the steps reuse them."""
    from inference.runtime.static_cache import BoundStep

    engine, prompts, alone = static_engine
    bound, runs = [], []
    make, run = engine.bound_step, BoundStep.run
    monkeypatch.setattr(engine, "bound_step", lambda *args: bound.append(args[1]) or make(*args))
    monkeypatch.setattr(BoundStep, "run", lambda self, *args: runs.append(1) or run(self, *args))
    assert engine.generate_ids(prompts, TINY_MAX_NEW_TOKENS, max_rows=3) == alone
    fed_at_most = 1 + engine.guess_tokens
    assert all(len(p) > fed_at_most for p in prompts)
    assert sorted(tokens for tokens in bound if tokens > fed_at_most) == sorted(len(p) for p in prompts)
    assert 1 <= bound.count(1) <= 3  # one decode binding per count of running rows (1, 2 or 3)
    assert all(bound.count(fed) <= 1 for fed in range(2, fed_at_most + 1))  # one row, guesses checked
    assert len(runs) > 2 * len(bound)  # the decode steps reuse their bindings


# --- speculative one-row steps (guesses from the row's own context, kept only when greedy agrees) ------


def test_a_guess_is_what_followed_the_latest_earlier_occurrence_of_the_tail():
    from inference.runtime.speculation import PromptLookup

    lookup = PromptLookup([5, 6, 7, 8, 9, 6, 7])
    assert lookup.guess(3) == [8, 9, 6]  # "6 7" was followed by 8 9 6
    assert lookup.guess(1) == [8] and lookup.guess(0) == []
    lookup.extend([1, 2])
    assert lookup.guess(3) == []  # 2 never occurred before
    lookup.extend([5, 6])
    assert lookup.guess(2) == [7, 8]  # the longest tail n-gram first: "2 5 6" no, "5 6" yes
    lookup.extend([7, 4, 6, 7])
    assert lookup.guess(2) == [4, 6]  # the LATEST earlier "6 7", not the first


def test_one_row_steps_check_guesses_and_keep_the_greedy_text(static_engine):
    from inference.runtime.static_cache import SlotBatcher

    engine, prompts, alone = static_engine
    assert engine.logit_positions == 4 and engine.guess_tokens == 3
    budgets = [engine.budget(len(p), TINY_MAX_NEW_TOKENS) for p in prompts]
    batcher = SlotBatcher(engine, max_rows=1)
    assert batcher.run(prompts, budgets) == alone
    # The tiny random model repeats itself: guesses are checked, and some are confirmed.
    assert batcher.speculative_steps > 0 and batcher.confirmed_guesses > 0
    assert batcher.speculative_steps + batcher.confirmed_guesses == sum(len(a) - 1 for a in alone)
    wider = SlotBatcher(engine, max_rows=3)  # the one-row tail of a batch checks guesses too
    assert wider.run(prompts, budgets) == alone and wider.speculative_steps > 0


def test_a_graph_returning_the_last_position_only_decodes_without_guesses(static_engine, tmp_path):
    """The first static layout (concordance-draft 1.1.1): logits of the last position, no metadata."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from inference.runtime.engine import DecoderEngine

    _, prompts, alone = static_engine
    model = onnx.load(str(tmp_path / "model.onnx"))
    start = next(i for i in model.graph.initializer if i.name == "last_start")
    start.CopyFrom(numpy_helper.from_array(np.array([-1], dtype=np.int64), "last_start"))
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 1
    del model.metadata_props[:]
    first = tmp_path / "first-layout"
    first.mkdir()
    for name in ("config.json", "generation_config.json", "tokenizer.json"):
        (first / name).write_bytes((tmp_path / name).read_bytes())
    onnx.save(model, str(first / "model.onnx"))
    engine = DecoderEngine(first)
    assert engine.static_cache and engine.logit_positions == 1 and engine.guess_tokens == 0
    assert engine.generate_ids(prompts, TINY_MAX_NEW_TOKENS, max_rows=1) == alone
    assert engine.generate_ids(prompts, TINY_MAX_NEW_TOKENS, max_rows=3) == alone
