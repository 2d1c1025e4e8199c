"""The native decode-step kernels against the XLA operations they replace: the attention of decode steps and
draft checks read where the KV cache holds it, float32 or float16 (native/decode_attention.cc, against
attention.py), and the greedy argmax (native/argmax.cc)."""

from __future__ import annotations

import types

import jax.numpy as jnp
import numpy as np
import pytest

from jupyter_codegemma.backends.local import attention
from jupyter_codegemma.backends.local import native as kernels


@pytest.fixture(scope="module", autouse=True)
def native_kernels():
    if not kernels.enable_native():
        pytest.skip(f"no native kernels here: {kernels.native_unavailable_reason()}")


def _cache(rng, stacked: bool, length: int = 200, heads: int = 2, dim: int = 32):
    shape = (3, 1, length, heads, dim) if stacked else (1, length, heads, dim)
    return (jnp.asarray(rng.standard_normal(shape, np.float32)), jnp.asarray(rng.standard_normal(shape, np.float32)))


def _xla(q, k, v, layer, start, position, view, window, softcap, positions: int = 1):
    keys = (k if layer is None else k[layer])[:, start:start + view].astype(jnp.float32)
    values = (v if layer is None else v[layer])[:, start:start + view].astype(jnp.float32)
    config = types.SimpleNamespace(attn_logit_softcap=softcap, sliding_window=window)
    return attention._attend(config, window is not None, q, keys, values, position + jnp.arange(positions),
                             start + jnp.arange(view))


@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("window,softcap", [(None, None), (8, None), (8, 50.0), (None, 30.0)])
def test_a_decode_step_attends_as_the_xla_attention_does(stacked, window, softcap):
    rng = np.random.default_rng(0)
    k, v = _cache(rng, stacked)
    q = jnp.asarray(rng.standard_normal((1, 2, 4, 32), np.float32))  # 2 KV heads, 4 query heads each
    layer = 1 if stacked else None
    # (position, view start, view length): the first position, views from 0 and from inside the cache,
    # views whose chunks of 64 start mid-chunk, and a view much longer than the window.
    for position, start, view in ((0, 0, 64), (5, 0, 64), (130, 0, 192), (130, 100, 40), (199, 136, 64), (70, 63, 9)):
        out = kernels.decode_attention(q, k, v, None if layer is None else jnp.int32(layer), jnp.int32(start),
                                       jnp.int32(position), view=view, window=window, softcap=softcap)
        expected = _xla(q, k, v, layer, start, position, view, window, softcap)
        np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5, rtol=1e-5,
                                   err_msg=f"position {position}, view [{start}, {start + view})")


def test_a_rows_attention_has_the_same_bits_in_every_view_that_holds_its_keys():
    """Chunks are aligned to cache positions and a key the row does not see never enters its sums: the
    view a step happens to read (its start and length) does not change a bit of the result."""
    rng = np.random.default_rng(1)
    k, v = _cache(rng, stacked=True, length=400)
    q = jnp.asarray(rng.standard_normal((1, 2, 4, 32), np.float32))
    for window in (None, 40):
        first = 0 if window is None else 300 - window + 1
        results = [np.asarray(kernels.decode_attention(q, k, v, jnp.int32(2), jnp.int32(start), jnp.int32(300),
                                                       view=view, window=window, softcap=None))
                   for start, view in ((first, 301 - first), (0, 400), (max(0, first - 7), 350 - max(0, first - 7)))]
        for other in results[1:]:
            assert np.array_equal(results[0], other), window


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16])
@pytest.mark.parametrize("window,softcap", [(None, None), (8, None), (8, 50.0)])
def test_a_draft_check_attends_as_the_xla_attention_does_over_either_cache_dtype(dtype, window, softcap):
    """A draft check's 8 positions (4 query heads each: 32 rows per KV head), each row over the keys its own
    position sees; over a float16 cache the keys and values are widened exactly, so it matches XLA on them."""
    rng = np.random.default_rng(2)
    k, v = (a.astype(dtype) for a in _cache(rng, stacked=True))
    q = jnp.asarray(rng.standard_normal((1, 2, 8 * 4, 32), np.float32))
    for position, start, view in ((0, 0, 64), (120, 0, 192), (130, 114, 24), (190, 136, 64)):
        out = kernels.decode_attention(q, k, v, jnp.int32(2), jnp.int32(start), jnp.int32(position), view=view,
                                       window=window, softcap=softcap, positions=8)
        expected = _xla(q, k, v, 2, start, position, view, window, softcap, positions=8)
        np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5, rtol=1e-5,
                                   err_msg=f"{dtype.__name__}, positions [{position}, {position + 8}), view [{start}, {start + view})")


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16])
def test_a_draft_checks_rows_have_the_bits_of_decode_steps_at_their_positions(dtype):
    """Each row's sums see only its own keys, so a draft check of 8 positions gives, position by position,
    what 8 decode steps over the same cache give."""
    rng = np.random.default_rng(3)
    k, v = (a.astype(dtype) for a in _cache(rng, stacked=False, length=300))
    q = jnp.asarray(rng.standard_normal((1, 2, 8 * 4, 32), np.float32))
    for window in (None, 40):
        start, view, first = (100, 140, 200) if window else (0, 240, 200)
        check = np.asarray(kernels.decode_attention(q, k, v, None, jnp.int32(start), jnp.int32(first), view=view,
                                                    window=window, softcap=None, positions=8))
        for t in range(8):
            step = np.asarray(kernels.decode_attention(q[:, :, 4 * t:4 * t + 4], k, v, None, jnp.int32(start),
                                                       jnp.int32(first + t), view=view, window=window, softcap=None))
            assert np.array_equal(check[:, :, 4 * t:4 * t + 4], step), (window, t)


def test_the_kv_cache_is_float16_where_the_native_attention_reads_it():
    from jupyter_codegemma.backends.errors import SettingsError
    from jupyter_codegemma.backends.local import EngineOptions
    from jupyter_codegemma.backends.local.dtypes import resolve_cache_dtype

    assert resolve_cache_dtype("auto", "int8", "int8", "cpu", native_attention=True) == "float16"
    assert resolve_cache_dtype("auto", "int8", "int8", "cpu", native_attention=False) == "float32"
    assert resolve_cache_dtype("auto", "int8", "float32", "cpu", native_attention=True) == "float32"
    assert resolve_cache_dtype("auto", "float32", "float32", "cpu", native_attention=True) == "float32"
    assert resolve_cache_dtype("auto", "bfloat16", "bfloat16", "gpu") == "bfloat16"
    assert resolve_cache_dtype("float32", "int8", "int8", "cpu", native_attention=True) == "float32"
    with pytest.raises(SettingsError, match="cache_dtype"):
        EngineOptions(cache_dtype="int4")


@pytest.mark.parametrize("n", [1, 7, 64, 20000, 262144])
def test_argmax_picks_what_jnp_argmax_picks(n):
    """Ties go to the first, a NaN wins (the first of them), -inf rows still pick their first; rows long
    enough to be split over threads are merged in order."""
    rng = np.random.default_rng(n)
    rows = rng.standard_normal((6, n)).astype(np.float32)
    rows[1] = np.round(rows[1])  # many ties
    rows[1, -1] = rows[1].max()  # the largest value again, at the end
    rows[2, n // 2] = np.nan
    rows[2, -1] = np.nan
    rows[3] = -np.inf
    rows[4, -1] = 100.0  # the largest in the last part
    rows[5, : n // 3] = 5.0  # ties spanning a split
    x = jnp.asarray(rows)
    np.testing.assert_array_equal(np.asarray(kernels.argmax(x)), np.asarray(jnp.argmax(x, axis=-1)))
    np.testing.assert_array_equal(np.asarray(kernels.argmax(x.reshape(2, 3, n))),
                                  np.asarray(jnp.argmax(x, axis=-1)).reshape(2, 3))
