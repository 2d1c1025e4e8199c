"""Prefill, decode and sampling on tiny random models: behaviour, not shapes.

Tiny configs have sliding windows of 8 positions, so 40-token prompts exercise the
window, chunked prefill and the cache views the way 2 900-token prompts do on the real model.
"""

from __future__ import annotations

import threading

import jax
import numpy as np
import pytest

from jupyter_codegemma.backends.local import config as configs
from jupyter_codegemma.backends.local.model import Transformer, init_params
from jupyter_codegemma.backends.base import SamplingParams, StepStats
from jupyter_codegemma.backends.local.sampler import Sampler

TINY = [configs.tiny_gemma1_mqa(), configs.tiny_gemma1_mha(), configs.tiny_gemma2(), configs.tiny_gemma3()]
CACHE_LEN = 128
TOLERANCE = 1e-4  # float32 logits of magnitude ~10: summation order only


@pytest.fixture(scope="module", params=TINY, ids=[c.name for c in TINY])
def tiny(request):
    config = request.param
    return config, init_params(config, seed=1)


def make_sampler(tiny, **kwargs) -> Sampler:
    config, params = tiny
    return Sampler(Transformer(config), params, kwargs.pop("cache_len", CACHE_LEN), **kwargs)


def random_ids(config, n: int, seed: int = 0) -> list[int]:
    return [int(i) for i in np.random.RandomState(seed).randint(3, config.vocab_size, size=n)]


def test_cached_decoding_equals_one_full_forward_pass(tiny):
    """Logits at each step of prefill + decode equal a full pass over the final sequence."""
    config, _ = tiny
    sampler = make_sampler(tiny, prefill_buckets=(16,))
    prompt = random_ids(config, 37)  # 3 chunks of 16, longer than the sliding window
    step_logits = []
    generated = list(sampler.generate(prompt, max_new_tokens=24,
                                      on_logits=lambda l: step_logits.append(np.asarray(l[0]))))
    full = sampler.forward_logits(prompt + generated)
    for i, logits in enumerate(step_logits):
        np.testing.assert_allclose(logits, full[len(prompt) - 1 + i], atol=TOLERANCE, rtol=0)
    assert generated == [int(full[len(prompt) - 1 + i].argmax()) for i in range(len(generated))]


@pytest.mark.parametrize("buckets", [(8,), (16, 64), (128,)])
def test_padding_bucket_does_not_change_the_output(tiny, buckets):
    config, _ = tiny
    prompt = random_ids(config, 45, seed=2)
    reference = list(make_sampler(tiny, prefill_buckets=(32,)).generate(prompt, max_new_tokens=12))
    assert list(make_sampler(tiny, prefill_buckets=buckets).generate(prompt, max_new_tokens=12)) == reference


def test_prefix_reuse_gives_the_same_tokens_as_a_fresh_cache(tiny):
    config, _ = tiny
    sampler = make_sampler(tiny, prefill_buckets=(8, 32))
    base = random_ids(config, 30, seed=3)
    list(sampler.generate(base, max_new_tokens=5))
    extended = base + random_ids(config, 11, seed=4)
    stats = StepStats()
    reused = list(sampler.generate(extended, max_new_tokens=10, stats=stats))
    assert stats.reused_tokens == 30
    assert reused == list(make_sampler(tiny).generate(extended, max_new_tokens=10))
    # An edit in the middle: only the common prefix is reused.
    edited = extended[:20] + [(extended[20] + 1) % config.vocab_size] + extended[21:]
    stats = StepStats()
    again = list(sampler.generate(edited, max_new_tokens=10, stats=stats))
    assert stats.reused_tokens == 20
    assert again == list(make_sampler(tiny).generate(edited, max_new_tokens=10))


def test_stop_ids_stop_and_are_yielded_last(tiny):
    config, _ = tiny
    sampler = make_sampler(tiny)
    prompt = random_ids(config, 10, seed=5)
    free = list(sampler.generate(prompt, max_new_tokens=20))
    stop = free[6]
    stats = StepStats()
    stopped = list(sampler.generate(prompt, max_new_tokens=20, stop_ids=[stop], stats=stats))
    assert stopped == free[:free.index(stop) + 1]
    assert stats.finish_reason == "stop"


@pytest.mark.parametrize("speculative", [False, True], ids=["plain", "speculative"])
def test_a_consumer_that_stops_reading_keeps_the_cache_for_the_next_prompt(tiny, speculative):
    # The engine stops reading once a suggestion is complete (a stop id, a finished line): closing the
    # generator must not throw the cache away, or the next keystroke re-prefills the whole prompt.
    config, _ = tiny
    sampler = make_sampler(tiny, speculative=speculative)
    prompt = random_ids(config, 12, seed=13) * 2
    stream = sampler.generate(prompt, max_new_tokens=20)
    first = [next(stream) for _ in range(3)]
    stream.close()
    extended = prompt + first
    stats = StepStats()
    again = list(sampler.generate(extended, max_new_tokens=6, stats=stats))
    assert stats.reused_tokens >= len(prompt)
    assert again == list(make_sampler(tiny).generate(extended, max_new_tokens=6))


def test_max_new_tokens_and_context_limits(tiny):
    config, _ = tiny
    sampler = make_sampler(tiny, cache_len=64)
    stats = StepStats()
    assert len(list(sampler.generate(random_ids(config, 10), max_new_tokens=7, stats=stats))) == 7
    assert stats.finish_reason == "length"
    stats = StepStats()
    out = list(sampler.generate(random_ids(config, 60), max_new_tokens=20, stats=stats))
    assert len(out) == 5 and stats.finish_reason == "context"  # positions 60..64 fill the cache
    with pytest.raises(ValueError, match="empty"):
        list(sampler.generate([], max_new_tokens=3))
    with pytest.raises(ValueError, match="holds 64"):
        list(sampler.generate(random_ids(config, 65), max_new_tokens=3))


@pytest.mark.parametrize("sampling", [
    SamplingParams(temperature=1.0, seed=7),
    SamplingParams(temperature=0.8, top_k=20, seed=7),
    SamplingParams(temperature=1.2, top_p=0.9, seed=7),
], ids=["temperature", "top_k", "top_p"])
def test_a_seed_reproduces_sampling(tiny, sampling):
    config, _ = tiny
    prompt = random_ids(config, 12, seed=6)
    first = list(make_sampler(tiny).generate(prompt, max_new_tokens=16, sampling=sampling))
    again = list(make_sampler(tiny).generate(prompt, max_new_tokens=16, sampling=sampling))
    other = list(make_sampler(tiny).generate(prompt, max_new_tokens=16,
                                             sampling=SamplingParams(**{**sampling.__dict__, "seed": 8})))
    assert first == again
    assert first != other


def test_top_k_and_top_p_restrict_the_candidates():
    from jupyter_codegemma.backends.local.steps import SamplerShape as _SamplerShape, sample_token

    logits = jax.numpy.asarray([[5.0, 4.0, 3.0, 0.0, -1.0, -2.0]])
    temperature, keys = jax.numpy.float32(1.0), jax.random.split(jax.random.PRNGKey(0), 400)
    top2 = {int(sample_token(logits, k, temperature, 1.0, _SamplerShape(False, 2, False))[0]) for k in keys}
    assert top2 == {0, 1}
    # softmax([5,4,3,...]) = 0.66, 0.24, 0.09, ...: top_p 0.8 keeps the first two.
    nucleus = {int(sample_token(logits, k, temperature, jax.numpy.float32(0.8), _SamplerShape(False, None, True))[0])
               for k in keys}
    assert nucleus == {0, 1}
    assert int(sample_token(logits, keys[0], temperature, 1.0, _SamplerShape(True, None, False))[0]) == 0


def test_cancellation_stops_within_one_step(tiny):
    config, _ = tiny
    sampler = make_sampler(tiny)
    cancel = threading.Event()
    stats = StepStats()
    received = []
    for token in sampler.generate(random_ids(config, 10), max_new_tokens=50, cancel=cancel, stats=stats):
        received.append(token)
        if len(received) == 3:
            cancel.set()
    assert len(received) == 3 and stats.finish_reason == "cancelled"
    # Already cancelled: nothing is generated at all.
    assert list(sampler.generate(random_ids(config, 10), max_new_tokens=5, cancel=cancel)) == []


def test_an_interrupted_generation_leaves_the_sampler_usable(tiny):
    config, _ = tiny
    sampler = make_sampler(tiny)
    prompt = random_ids(config, 20, seed=9)
    expected = list(make_sampler(tiny).generate(prompt, max_new_tokens=8))
    generator = sampler.generate(prompt, max_new_tokens=8)
    next(generator)
    with pytest.raises(KeyboardInterrupt):
        generator.throw(KeyboardInterrupt)
    assert list(sampler.generate(prompt, max_new_tokens=8)) == expected


def test_speculative_greedy_gives_the_same_ids_as_plain_greedy(tiny):
    config, _ = tiny
    # A prompt that repeats itself gives prompt lookup something to draft from.
    unit = random_ids(config, 6, seed=11)
    prompt = unit * 4 + unit[:3]
    plain = list(make_sampler(tiny, speculative=False).generate(prompt, max_new_tokens=30))
    stats = StepStats()
    fast = list(make_sampler(tiny, speculative=True).generate(prompt, max_new_tokens=30, stats=stats))
    assert fast == plain
    assert stats.new_tokens == 30 and stats.draft_accepted > 0


def test_speculative_greedy_respects_stops_limits_and_reuse(tiny):
    config, _ = tiny
    unit = random_ids(config, 5, seed=12)
    prompt = unit * 3
    sampler = make_sampler(tiny, cache_len=64, speculative=True)
    plain_stats = StepStats()
    plain = list(make_sampler(tiny, cache_len=64, speculative=False).generate(prompt, max_new_tokens=60,
                                                                               stats=plain_stats))
    assert len(plain) == 64 - 15 + 1 and plain_stats.finish_reason == "context"  # the last id needs no slot
    stop = plain[4]
    assert list(sampler.generate(prompt, max_new_tokens=40, stop_ids=[stop])) == plain[:plain.index(stop) + 1]
    for n in (1, 2, 9):
        assert list(sampler.generate(prompt, max_new_tokens=n)) == plain[:n]
    stats = StepStats()
    near_the_end = list(sampler.generate(prompt, max_new_tokens=60, stats=stats))  # 15 + 60 > 64
    assert near_the_end == plain and stats.finish_reason == "context"
    # The cache the loop left behind is right: extending the prompt reuses it and agrees.
    extended = prompt + plain[:10]
    stats = StepStats()
    assert list(sampler.generate(extended, max_new_tokens=8, stats=stats)) == plain[10:18]
    assert stats.reused_tokens > len(prompt)
