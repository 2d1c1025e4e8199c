"""The repetition penalty (SamplingParams.repetition_penalty over repetition_window recent ids) on tiny
random models: penalised greedy decoding, plain and speculative, equals a reference computed step by
step with numpy on the logits of forward_logits; with the penalty off nothing changes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jupyter_codegemma.backends.base import SamplingParams, StepStats
from jupyter_codegemma.backends.errors import SettingsError
from jupyter_codegemma.backends.local import config as configs
from jupyter_codegemma.backends.local.model import Transformer, init_params
from jupyter_codegemma.backends.local.programs import SUFFIX, Programs
from jupyter_codegemma.backends.local.sampler import Sampler, recent_window
from jupyter_codegemma.backends.local.steps import NO_ID, SamplerShape, decode_step, penalise, sample_token

TINY = [configs.tiny_gemma2(), configs.tiny_gemma3()]
CACHE_LEN = 128


@pytest.fixture(scope="module", params=TINY, ids=[c.name for c in TINY])
def tiny(request):
    config = request.param
    return config, init_params(config, seed=1)


def make_sampler(tiny, **kwargs) -> Sampler:
    config, params = tiny
    return Sampler(Transformer(config), params, kwargs.pop("cache_len", CACHE_LEN), **kwargs)


def repeating_prompt(config, seed: int) -> list[int]:
    """A prompt that repeats itself: greedy decoding of a random model copies it, and prompt lookup
    has drafts to check."""
    unit = [int(i) for i in np.random.RandomState(seed).randint(3, config.vocab_size, size=6)]
    return unit * 4 + unit[:3]


def reference(sampler: Sampler, prompt: list[int], n: int, penalty: float, window: int) -> list[int]:
    """Penalised greedy decoding step by step in numpy (llama.cpp's rule), on full-pass logits."""
    ids = list(prompt)
    for _ in range(n):
        logits = sampler.forward_logits(ids)[-1].astype(np.float32)
        for i in set(ids[-window:]):
            logits[i] = logits[i] / np.float32(penalty) if logits[i] > 0 else logits[i] * np.float32(penalty)
        ids.append(int(np.argmax(logits)))
    return ids[len(prompt):]


@pytest.mark.parametrize("window", [8, 64], ids=["window-inside-prompt", "window-past-prompt-start"])
@pytest.mark.parametrize("speculative", [False, True], ids=["plain", "speculative"])
def test_penalised_greedy_equals_a_numpy_reference(tiny, speculative, window):
    config, _ = tiny
    prompt = repeating_prompt(config, seed=11)
    sampling = SamplingParams(repetition_penalty=1.5, repetition_window=window)
    sampler = make_sampler(tiny, speculative=speculative, prefill_buckets=(16,))  # two prefill chunks
    stats = StepStats()
    ids = list(sampler.generate(prompt, max_new_tokens=24, sampling=sampling, stats=stats))
    assert ids == reference(sampler, prompt, 24, 1.5, window)
    plain = list(make_sampler(tiny).generate(prompt, max_new_tokens=24))
    assert ids != plain  # the penalty changed what was picked
    # The cache the loop left is right: the next (unpenalised) request reuses it and agrees.
    assert list(sampler.generate(prompt, max_new_tokens=24)) == plain


def test_speculative_penalised_decoding_checks_drafts(tiny):
    """A mild penalty still lets a repeating prompt be copied: drafts are checked and accepted."""
    config, _ = tiny
    prompt = repeating_prompt(config, seed=11)
    sampling = SamplingParams(repetition_penalty=1.02, repetition_window=4)
    stats = StepStats()
    fast = list(make_sampler(tiny, speculative=True).generate(prompt, max_new_tokens=30, sampling=sampling,
                                                              stats=stats))
    plain = list(make_sampler(tiny, speculative=False).generate(prompt, max_new_tokens=30, sampling=sampling))
    assert fast == plain
    assert stats.draft_accepted > 0


def test_penalty_rule_and_window():
    logits = jnp.asarray([[2.0, -1.0, 0.5, 3.0, 0.0]])
    recent = jnp.asarray([[0, 1, 1, NO_ID]])  # 1 twice (penalised once), an empty slot
    out = np.asarray(penalise(logits, recent, jnp.float32(2.0)))
    np.testing.assert_allclose(out, [[1.0, -2.0, 0.5, 3.0, 0.0]])
    # Greedy picks after the penalty: 3 wins, but with 3 recent, 0 (2.0 / 1.1) beats 3 (3.0 / 2).
    shape = SamplerShape(True, None, False, 4)
    key, one = jax.random.PRNGKey(0), jnp.float32(1)
    assert int(sample_token(logits, key, one, one, shape, jnp.asarray([[3, NO_ID, NO_ID, NO_ID]]),
                            jnp.float32(2.0))[0]) == 0
    assert recent_window([5, 6, 7], 2).tolist() == [6, 7]
    assert recent_window([5], 3).tolist() == [NO_ID, NO_ID, 5]


def test_sampling_params_validate_the_penalty():
    assert not SamplingParams().penalised
    assert SamplingParams(repetition_penalty=1.1).penalised
    for bad in (0.9, float("nan"), float("inf")):
        with pytest.raises(SettingsError, match="repetition_penalty"):
            SamplingParams(repetition_penalty=bad)
    with pytest.raises(SettingsError, match="repetition_window"):
        SamplingParams(repetition_penalty=1.1, repetition_window=0)


def test_off_the_programs_are_the_ones_without_a_penalty(tiny):
    """Penalty 1.0 (the default, whatever the window) compiles exactly the programs of before: the same
    static shape and no penalty arguments; a penalty gets programs of its own."""
    config, params = tiny
    assert SamplerShape.of(SamplingParams()) == SamplerShape(True, None, False)
    assert SamplerShape.of(SamplingParams(repetition_window=7)) == SamplerShape(True, None, False)
    assert SamplerShape.of(SamplingParams(temperature=0.5, top_p=0.9)) == SamplerShape(False, None, True)
    assert SamplerShape.of(SamplingParams(repetition_penalty=1.1)).penalty_window == 64
    model = Transformer(config)
    from jupyter_codegemma.backends.local.model import init_cache

    cache = init_cache(config, 1, 64, jnp.float32)
    args = (jnp.zeros((1,), jnp.int32), cache, jnp.int32(3), jax.random.PRNGKey(0), jnp.float32(1), jnp.float32(1))
    off = decode_step.lower(model, params, *args, kv_len=64, shape=SamplerShape.of(SamplingParams()))
    on = decode_step.lower(model, params, *args, jnp.full((1, 64), NO_ID, jnp.int32), jnp.float32(1.1), kv_len=64,
                           shape=SamplerShape.of(SamplingParams(repetition_penalty=1.1)))
    assert off.in_tree.num_leaves + 2 == on.in_tree.num_leaves  # the window and the penalty


def test_penalised_steps_are_saved_programs_of_their_own(tmp_path):
    config = configs.tiny_gemma3()
    params = init_params(config, seed=5)
    prompt = repeating_prompt(config, seed=3)
    sampling = SamplingParams(repetition_penalty=1.3, repetition_window=16)

    def run(programs):
        sampler = Sampler(Transformer(config), params, 128, prefill_buckets=(16, 32), speculative=True,
                          programs=programs)
        return list(sampler.generate(prompt, max_new_tokens=12)), list(sampler.generate(prompt, max_new_tokens=12,
                                                                                        sampling=sampling))

    expected = run(None)
    first = Programs(tmp_path)
    assert run(first) == expected
    saved = set(tmp_path.glob(f"*{SUFFIX}"))
    second = Programs(tmp_path)
    assert run(second) == expected
    assert second.exported == 0 and set(tmp_path.glob(f"*{SUFFIX}")) == saved


def test_servers_get_the_penalty_under_llama_cpp_and_vllm_names():
    from jupyter_codegemma.backends.remote.client import RemoteEngine

    off = RemoteEngine._options(9, SamplingParams(), ())
    assert off["repeat_penalty"] == off["repetition_penalty"] == 1.0  # llama.cpp's server would use 1.1
    assert "repeat_last_n" not in off and off.get("frequency_penalty", 0) == 0
    assert RemoteEngine._options(9, None, ())["repeat_penalty"] == 1.0
    on = RemoteEngine._options(9, SamplingParams(repetition_penalty=1.1, repetition_window=32), ())
    assert on["repeat_penalty"] == on["repetition_penalty"] == 1.1 and on["repeat_last_n"] == 32
    assert on.get("frequency_penalty", 0) == 0


def test_the_setting_is_on_for_codegemma_cells_only_unless_set():
    from jupyter_codegemma.kernel.settings import CodeGemma, SettingError, set_from_text

    settings = CodeGemma()
    assert settings.repetition_penalty is None
    assert settings.penalty_for("generate") == 1.1
    assert [settings.penalty_for(kind) for kind in ("explain", "fix", "chat")] == [1.0, 1.0, 1.0]
    assert set_from_text(settings, "repetition_penalty", "1.3") == 1.3
    assert {settings.penalty_for(kind) for kind in ("generate", "explain", "fix", "chat")} == {1.3}
    assert set_from_text(settings, "repetition_penalty", "1") == 1.0  # off everywhere
    assert settings.penalty_for("generate") == 1.0
    assert set_from_text(settings, "repetition_penalty", "None") is None  # back to the defaults
    settings.model = "/models/codegemma-7b-it.gguf"  # measured on the default model only
    assert settings.penalty_for("generate") == 1.0
    settings.model, settings.server_url = "", "http://127.0.0.1:8080"
    assert settings.penalty_for("generate") == 1.0
    with pytest.raises(SettingError, match="repetition_penalty takes a number of at least 1.0"):
        set_from_text(settings, "repetition_penalty", "0.5")
