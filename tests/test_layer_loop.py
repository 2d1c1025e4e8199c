"""The layer loop (model.py's `layer_period`): the layers run as a loop over their repeating
groups, on stacked parameters, and compute what the unrolled layers compute; the native kernels
multiply the matrix of the loop's layer where it lies in its stack."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jupyter_codegemma.backends.local import config as configs
from jupyter_codegemma.backends.local import native, quantize
from jupyter_codegemma.backends.local.model import (Transformer, init_params, layer_period, layer_runs,
                                                    repeats_every, stack_layers)
from jupyter_codegemma.backends.local.sampler import Sampler


def _gemma3_two_groups() -> configs.GemmaConfig:
    """Twelve layers: two groups of Gemma 3's five sliding-window layers and one global one."""
    return configs.gemma3("tiny-gemma3-12", num_layers=12, embed_dim=64, hidden_dim=128, num_heads=4,
                          num_kv_heads=1, head_dim=64, vocab_size=512, sliding_window=8, max_context=256)


CONFIGS = {"gemma1-mqa": configs.tiny_gemma1_mqa, "gemma2": configs.tiny_gemma2, "gemma3-12": _gemma3_two_groups}


def test_the_period_is_where_the_attention_pattern_repeats():
    assert layer_period(configs.gemma3_270m()) == 6  # 18 layers: 3 groups
    assert layer_period(configs.codegemma_7b()) == 1  # every layer global: 28 groups of one
    assert layer_period(configs.tiny_gemma2()) == 2  # local, global, ...
    assert repeats_every(configs.gemma3_270m(), 18) and not repeats_every(configs.gemma3_270m(), 4)
    assert layer_runs(configs.gemma3_270m(), 6) == [(0, 5), (5, 1)]  # five sliding-window layers, one global
    assert layer_runs(configs.tiny_gemma2(), 2) == [(0, 1), (1, 1)]
    with pytest.raises(ValueError, match="does not repeat every 4"):
        Transformer(configs.gemma3_270m(), layer_period=4).init(
            jax.random.PRNGKey(0), jnp.zeros((1, 1), jnp.int32), [], jnp.int32(0), 8)


def test_stacking_puts_each_layer_where_the_loops_index_it():
    """Group g's layer first + i of a run of `length` is row g·length + i of the run's stack."""
    config = _gemma3_two_groups()
    params = jax.tree.map(np.asarray, init_params(config))
    stacked = stack_layers(params, config, 6)
    assert set(stacked) == {"embedder", "final_norm", "layers"} and set(stacked["layers"]) == {"run_0", "run_1"}
    local, global_ = stacked["layers"]["run_0"]["block"], stacked["layers"]["run_1"]["block"]
    assert local["attn"]["qkv"]["w"].shape[0] == 10 and global_["attn"]["qkv"]["w"].shape[0] == 2
    np.testing.assert_array_equal(np.asarray(global_["attn"]["qkv"]["w"])[1], params["layer_11"]["attn"]["qkv"]["w"])
    np.testing.assert_array_equal(np.asarray(local["mlp"]["down"]["w"])[5 + 3], params["layer_9"]["mlp"]["down"]["w"])
    np.testing.assert_array_equal(np.asarray(local["pre_ffw_norm"]["scale"])[0], params["layer_0"]["pre_ffw_norm"]["scale"])
    with pytest.raises(ValueError, match="do not form groups of 4"):
        stack_layers(params, config, 4)
    # A freshly initialised looped model has the same tree as the stacked one.
    looped = Transformer(config, layer_period=6)
    assert jax.tree.map(np.shape, looped.init(
        jax.random.PRNGKey(0), jnp.zeros((1, 1), jnp.int32),
        Sampler(looped, stacked, 8).new_cache(8), jnp.int32(0), 8)["params"]) == jax.tree.map(np.shape, stacked)


def _greedy(sampler: Sampler, prompt: list[int]) -> tuple[list[int], list[np.ndarray]]:
    steps: list[np.ndarray] = []
    ids = list(sampler.generate(prompt, max_new_tokens=10, on_logits=lambda l: steps.append(np.asarray(l[0]))))
    return ids, steps


@pytest.mark.parametrize("name", CONFIGS)
def test_float_loop_equals_the_unrolled_layers(name):
    """Prompt chunks (short ones over a longer cache view, so sliding windows cut in), draft checks and
    decoding on stacked float weights give the unrolled model's logits, to float precision."""
    config = CONFIGS[name]()
    params = jax.tree.map(np.asarray, init_params(config, seed=3))
    period = layer_period(config)
    assert config.num_layers // period >= 2  # a real loop
    prompt = [int(i) for i in np.random.RandomState(1).randint(3, config.vocab_size, size=37)]
    unrolled = Sampler(Transformer(config), jax.tree.map(jnp.asarray, params), 128, prefill_buckets=(16,),
                       speculative=True)
    looped = Sampler(Transformer(config, layer_period=period), jax.tree.map(jnp.asarray, stack_layers(params, config, period)),
                     128, prefill_buckets=(16,), speculative=True)
    ids_u, steps_u = _greedy(unrolled, prompt)
    ids_l, steps_l = _greedy(looped, prompt)
    assert ids_u == ids_l
    for a, b in zip(steps_u, steps_l):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
    np.testing.assert_allclose(unrolled.forward_logits(prompt), looped.forward_logits(prompt), atol=1e-4, rtol=0)


def test_int8_loop_on_the_native_kernels_follows_the_unrolled_layers():
    """With int8 weights the kernels read each layer's matrix from its stack. The two programs may sum
    in another order, and the kernels round activations to int8, so a 1e-6 difference can move a value
    by one rounding step: they agree to that step, as a chunked prefill agrees with a full pass."""
    config = _gemma3_two_groups()
    params = jax.tree.map(np.asarray, init_params(config, seed=1))
    q = quantize.quantize_int8(params)
    prompt = [int(i) for i in np.random.RandomState(0).randint(3, config.vocab_size, size=37)]
    unrolled = Sampler(Transformer(config), jax.tree.map(jnp.asarray, q), 128, prefill_buckets=(16,))
    looped = Sampler(Transformer(config, layer_period=6), jax.tree.map(jnp.asarray, stack_layers(q, config, 6)), 128,
                     prefill_buckets=(16,))
    _, steps_u = _greedy(unrolled, prompt)
    _, steps_l = _greedy(looped, prompt)
    full_u, full_l = unrolled.forward_logits(prompt), looped.forward_logits(prompt)
    tolerance = 0.02 * np.abs(full_u).max()
    np.testing.assert_allclose(full_l, full_u, atol=tolerance, rtol=0)
    for a, b in zip(steps_u, steps_l):
        np.testing.assert_allclose(b, a, atol=tolerance, rtol=0)


def _runnable() -> list[str]:
    native.enable_native()
    return list(native.runnable_isa_classes())


@pytest.mark.parametrize("rows", [1, 8, 37])
def test_every_kernel_multiplies_the_layer_it_is_given_from_a_stack(rows):
    """int8_matmul(x, stack, scales, layer=g) inside a loop is exactly int8_matmul(x, stack[g], scales[g]),
    on every kernel this process runs (and the XLA fallback)."""
    rng = np.random.RandomState(rows)
    stack, scales = zip(*(native.quantize_rows(rng.randn(96, 128).astype(np.float32)) for _ in range(3)))
    w, s = jnp.asarray(np.stack(stack)), jnp.asarray(np.stack(scales))
    x = jnp.asarray(rng.randn(rows, 128).astype(np.float32))
    for isa in _runnable():
        def body(carry, g, isa=isa):
            return carry, native.int8_matmul(x, w, s, isa=isa, layer=g)

        _, per_layer = jax.jit(lambda: jax.lax.scan(body, 0, jnp.arange(3, dtype=jnp.int32)))()
        for g in range(3):
            np.testing.assert_array_equal(np.asarray(per_layer[g]), np.asarray(native.int8_matmul(x, w[g], s[g], isa=isa)))


def test_a_layer_outside_the_stack_is_an_error_not_a_read_past_it():
    if len(_runnable()) < 2:
        pytest.skip(f"no native kernels here: {native.native_unavailable_reason()}")
    q, scale = native.quantize_rows(np.ones((64, 64), np.float32))
    w, s = jnp.asarray(np.stack([q, q])), jnp.asarray(np.stack([scale, scale]))
    with pytest.raises(Exception, match="a layer in the stack"):
        np.asarray(jax.jit(lambda g: native.int8_matmul(jnp.ones((1, 64)), w, s, layer=g))(jnp.int32(2)))
    with pytest.raises(ValueError, match="needs a layer"):
        native.int8_matmul(jnp.ones((1, 64)), w, s)


def test_the_engine_loops_where_the_native_kernels_run_and_unrolls_elsewhere():
    from jupyter_codegemma.backends.local import Engine, EngineOptions

    native.enable_native()
    looped = Engine.load(options=EngineOptions(warm_up=False))
    expected = layer_period(looped.config) if looped.dtype == "int8" and native.native_enabled() else 0
    assert looped.info()["layer_period"] == expected
    unrolled = Engine.load(options=EngineOptions(warm_up=False, layer_loop=False))
    assert unrolled.info()["layer_period"] == 0
    prompt = "def fibonacci(n):\n    "
    assert looped.complete_text(prompt, max_new_tokens=12).text == unrolled.complete_text(prompt, max_new_tokens=12).text


def test_stacks_from_memory_mapped_weights_go_into_the_arena_layer_by_layer(tmp_path):
    """The engine's path: int8 matrices memory-mapped from the weights cache, stacked (lazily) and put
    into the huge-page arena: each stack is one device array there with every layer in its row, and
    the mapped files' pages were let go (the arrays still read back right, from the file)."""
    from jupyter_codegemma.backends.local.weights_on_device import weights_to_device

    config = _gemma3_two_groups()
    q = quantize.quantize_int8(jax.tree.map(np.asarray, init_params(config)))
    mapped = {}
    for name, layer in q.items():
        if name.startswith("layer_"):
            np.save(tmp_path / f"{name}.npy", layer["mlp"]["down"]["w"])
            mapped[name] = {**layer, "mlp": {**layer["mlp"], "down": {
                "w": np.load(tmp_path / f"{name}.npy", mmap_mode="r"), "scale": layer["mlp"]["down"]["scale"]}}}
        else:
            mapped[name] = layer
    on_device = weights_to_device(stack_layers(mapped, config, 6), jnp.float32, huge_pages=True)
    down = on_device["layers"]["run_0"]["block"]["mlp"]["down"]["w"]
    assert down.shape == (10, *q["layer_0"]["mlp"]["down"]["w"].shape) and down.dtype == jnp.int8
    for row, layer in enumerate([0, 1, 2, 3, 4, 6, 7, 8, 9, 10]):
        np.testing.assert_array_equal(np.asarray(down[row]), q[f"layer_{layer}"]["mlp"]["down"]["w"])
        np.testing.assert_array_equal(mapped[f"layer_{layer}"]["mlp"]["down"]["w"], q[f"layer_{layer}"]["mlp"]["down"]["w"])


def test_a_long_chunk_attends_in_query_blocks_with_the_same_result(monkeypatch):
    """Above attention._MAX_LOGIT_BYTES of attention logits, a prompt chunk's queries attend block by block:
    the same logits as all at once (here the limit is lowered so a tiny model's chunk is split)."""
    from jupyter_codegemma.backends.local import attention
    from jupyter_codegemma.backends.local.model import init_cache

    config = _gemma3_two_groups()
    params = init_params(config, seed=4)
    tokens = jnp.asarray(np.random.RandomState(2).randint(3, config.vocab_size, size=(1, 64)), jnp.int32)

    def logits():
        hidden, _ = Transformer(config).apply({"params": params}, tokens, init_cache(config, 1, 128), jnp.int32(0), 128)
        return np.asarray(hidden)

    whole = logits()
    # [64 positions · 4 heads, 128 keys] of float32 logits in a global layer: eight blocks of 8 positions
    monkeypatch.setattr(attention, "_MAX_LOGIT_BYTES", 64 * 4 * 128 * 4 // 8)
    np.testing.assert_allclose(logits(), whole, atol=1e-5, rtol=0)


def test_a_sliding_window_chunk_attends_in_blocks_of_its_window_with_the_same_result(monkeypatch):
    """A sliding-window layer's prompt chunk attends in blocks of positions, each over only the keys
    its window reaches (attention._SLIDING_QUERY_BLOCK): the same hidden states as all queries over the
    chunk's whole view, for a first chunk (its first blocks' slices start at the cache's start) and for
    a chunk after it (slices within the earlier chunk's keys), in the unrolled model and the loop."""
    from jupyter_codegemma.backends.local import attention
    from jupyter_codegemma.backends.local.model import init_cache

    config = _gemma3_two_groups()  # window 8
    params = init_params(config, seed=5)
    ids = np.random.RandomState(3).randint(3, config.vocab_size, size=(1, 104))

    def hidden_states(period: int) -> list[np.ndarray]:
        model = Transformer(config, layer_period=period)
        weights = jax.tree.map(jnp.asarray, stack_layers(params, config, period)) if period else params
        cache = init_cache(config, 1, 128, period=period)
        out = []
        for start, end in ((0, 40), (40, 104)):  # 40 positions, then 64 after them
            hidden, cache = model.apply({"params": weights}, jnp.asarray(ids[:, start:end], jnp.int32), cache,
                                        jnp.int32(start), 128)
            out.append(np.asarray(hidden))
        return out

    monkeypatch.setattr(attention, "_SLIDING_QUERY_BLOCK", 1 << 20)  # never in blocks
    whole = hidden_states(0)
    monkeypatch.setattr(attention, "_SLIDING_QUERY_BLOCK", 8)  # blocks of 8 positions over 16 keys each
    for period in (0, 6):
        for blocked, reference in zip(hidden_states(period), whole):
            np.testing.assert_allclose(blocked, reference, atol=1e-4, rtol=0)
