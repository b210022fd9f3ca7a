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
