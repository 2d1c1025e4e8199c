"""The engine on the real default model: text in, streamed text out, clear errors."""

from __future__ import annotations

import threading
import time

import pytest

from jupyter_codegemma.backends.local import CheckpointError, Engine, EngineOptions, PromptError, SamplingParams

PROMPT = "def add(a, b):\n"


def test_streamed_pieces_make_up_the_text(engine):
    generation = engine.generate(PROMPT, max_new_tokens=24)
    pieces = list(generation)
    result = generation.result
    assert "".join(pieces) == result.text
    shown = [i for i in result.ids if i not in engine.stop_ids]
    assert result.text == engine.tokenizer.decode(shown)
    assert result.prompt_ids == engine.tokenize(PROMPT)
    assert 0 < result.ttft_ms <= result.total_ms
    assert result.stats.new_tokens == len(result.ids)


def test_info_describes_the_default_model(engine):
    info = engine.info()
    assert info["architecture"] == "gemma3"
    assert info["layers"] == 18 and info["vocab_size"] == 262_144
    assert 260e6 < info["parameters"] < 275e6
    assert info["fim"] is False  # Gemma 3 270M has no FIM pieces: completion is prefix-only
    assert info["device"] in ("cpu", "gpu", "tpu")
    # Where the native kernels came from: none when XLA multiplies, else the wheel's or g++'s build.
    assert (info["kernels_from"] == "none") == (info["kernels"] == "xla"), info
    assert info["kernels_from"] in ("wheel", "built with g++", "none")


def test_default_stop_ids_include_eos_and_end_of_turn(engine):
    assert engine.tokenizer.eos_id in engine.stop_ids
    assert engine.tokenizer.piece_to_id("<end_of_turn>") in engine.stop_ids


def test_a_longer_prompt_reuses_the_cached_prefix(engine):
    engine.reset_cache()
    first = engine.complete_text(PROMPT, max_new_tokens=4)
    extended = first.prompt_ids + first.ids[:2]
    again = engine.complete_text(extended, max_new_tokens=4)
    assert again.stats.reused_tokens == len(extended) - 1
    assert again.ids[:2] == first.ids[2:4]  # greedy continues the same way


@pytest.mark.parametrize("prompt", ["", []], ids=["empty-text", "empty-ids"])
def test_an_empty_prompt_is_refused(engine, prompt):
    with pytest.raises(PromptError, match="empty"):
        engine.generate(prompt)


def test_ids_outside_the_vocabulary_are_refused(engine):
    with pytest.raises(PromptError, match="outside the vocabulary"):
        engine.generate([2, 300_000])


def test_max_new_tokens_must_be_positive(engine):
    with pytest.raises(PromptError, match="max_new_tokens"):
        engine.generate(PROMPT, max_new_tokens=0)


@pytest.fixture(scope="module")
def small_context_engine():
    return Engine.load(options=EngineOptions(cache_len=256))


def test_a_prompt_longer_than_the_context_is_refused_with_the_numbers(small_context_engine):
    prompt = "x = 1\n" * 200  # about 600 tokens
    with pytest.raises(PromptError) as error:
        small_context_engine.generate(prompt, max_new_tokens=16)
    n = len(small_context_engine.tokenize(prompt))
    assert f"has {n} tokens" in str(error.value) and "240 fit" in str(error.value)


def test_truncation_keeps_bos_and_the_end_of_the_prompt(small_context_engine):
    prompt = "".join(f"value_{i} = {i}\n" for i in range(200))
    result = small_context_engine.complete_text(prompt, max_new_tokens=16, truncate=True)
    ids = small_context_engine.tokenize(prompt)
    assert len(result.prompt_ids) == 256 - 16
    assert result.prompt_ids[0] == small_context_engine.tokenizer.bos_id
    assert result.prompt_ids[1:] == ids[len(ids) - 239:]
    assert result.stats.new_tokens >= 1


def test_cancel_from_another_thread_stops_generation(engine):
    cancel = threading.Event()
    generation = engine.generate(PROMPT, max_new_tokens=200, cancel=cancel, stop_ids=(),
                                 sampling=SamplingParams(temperature=1.0, seed=1))
    pieces = iter(generation)
    next(pieces)
    timer = threading.Timer(0.2, cancel.set)
    timer.start()
    started = time.perf_counter()
    rest = list(pieces)
    elapsed = time.perf_counter() - started
    timer.join()
    assert generation.result.stats.finish_reason == "cancelled"
    assert generation.result.stats.new_tokens < 200
    # Stopping takes at most the step in flight, not the remaining ~190 steps.
    assert elapsed < 0.2 + 2.0, (elapsed, len(rest))


def test_the_engine_survives_an_interrupt_during_generation(engine):
    expected = engine.complete_text(PROMPT, max_new_tokens=8).ids
    pieces = iter(engine.generate(PROMPT, max_new_tokens=8))
    next(pieces)
    with pytest.raises(KeyboardInterrupt):
        pieces.throw(KeyboardInterrupt)
    assert engine.complete_text(PROMPT, max_new_tokens=8).ids == expected


def test_loading_a_missing_file_names_it(tmp_path):
    with pytest.raises(CheckpointError, match="no such file") as error:
        Engine.load(tmp_path / "missing.gguf")
    assert str(tmp_path / "missing.gguf") in str(error.value)


def test_loading_a_file_that_is_not_a_model_says_so(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a model\n")
    with pytest.raises(CheckpointError, match="not a model file") as error:
        Engine.load(path)
    assert str(path) in str(error.value)
