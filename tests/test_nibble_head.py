"""The output head in two planes of 4-bit halves (native/nibble_head.cc): the planes hold the int8 matrix
exactly, the exact product has the AVX2 int8 kernel's bits, and the greedy pick that reads the high plane
alone equals the argmax of the exact logits, on random matrices, on rows built to fool the estimate, and
on Gemma 3 270M's own head and hidden states."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jupyter_codegemma.backends.local import native as kernels


@pytest.fixture(scope="module")
def native_kernels():
    if not kernels.enable_native():
        pytest.skip(f"no native kernels here: {kernels.native_unavailable_reason()}")


def _int8(rng, n, k):
    return rng.integers(-127, 128, (n, k), dtype=np.int8)


def test_the_planes_hold_every_int8_value_exactly():
    rng = np.random.default_rng(0)
    w = np.concatenate([_int8(rng, 300, 128), np.arange(-128, 128, dtype=np.int8).reshape(2, 128)])
    planes = kernels.to_nibble_planes(w)
    assert planes.shape == (2, 302, 64) and planes.dtype == np.int8
    np.testing.assert_array_equal(np.asarray(kernels.from_nibble_planes(jnp.asarray(planes))), w)
    # Rows looked up from the planes (the embedding's encode) are the int8 rows.
    ids = jnp.asarray([[5, 301, 0]])
    np.testing.assert_array_equal(np.asarray(kernels.from_nibble_planes(jnp.take(jnp.asarray(planes), ids, axis=1))),
                                  w[np.asarray(ids)])
    with pytest.raises(ValueError, match="multiple of 64"):
        kernels.to_nibble_planes(w[:, :100])


@pytest.mark.parametrize("rows", [1, 3, 8, 9, 17, 40])
def test_the_exact_product_has_the_avx2_int8_kernels_bits(native_kernels, rows):
    if "avx2" not in kernels.runnable_isa_classes():
        pytest.skip("the AVX2 int8 kernel does not run here")
    rng = np.random.default_rng(rows)
    w, scale = _int8(rng, 1000, 640), jnp.asarray(rng.random(1000, dtype=np.float32) * 0.01)
    x = jnp.asarray(rng.standard_normal((rows, 640), dtype=np.float32))
    want = np.asarray(kernels.int8_matmul(x, jnp.asarray(w), scale, isa="avx2"))
    got = np.asarray(kernels.nibble_matmul(x, jnp.asarray(kernels.to_nibble_planes(w)), scale))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("rows", [1, 8, 11])
def test_the_greedy_pick_is_the_argmax_of_the_exact_logits(native_kernels, rows):
    rng = np.random.default_rng(10 + rows)
    n, k = 20_000, 256
    w = _int8(rng, n, k)
    scale = rng.random(n, dtype=np.float32) * 0.001 + 0.0001
    x = rng.standard_normal((rows, k), dtype=np.float32)
    # Rows made so the estimate (high nibbles, each low nibble taken as 7.5) ranks the argmax behind 50
    # others: row 9 000 holds 95 (high 5, low 15) where x[0] > 0, rows 12 000 … 12 049 hold 96 and 80
    # in turn (high 6 or 5, low 0) there: their estimates are larger, their exact logits smaller. All
    # hold -96 where x[0] < 0.
    positive = x[0] > 0
    turn = np.arange(k) % 2 == 0
    w[9_000] = np.where(positive, 95, -96)
    w[12_000:12_050] = np.where(positive, np.where(turn, 96, 80), -96)
    scale[9_000] = scale[12_000:12_050] = 0.01
    planes, scale = jnp.asarray(kernels.to_nibble_planes(w)), jnp.asarray(scale)
    exact = np.asarray(kernels.nibble_matmul(jnp.asarray(x), planes, scale))
    assert exact[0].argmax() == 9_000
    got = np.asarray(kernels.nibble_argmax(jnp.asarray(x), planes, scale))
    np.testing.assert_array_equal(got, exact.argmax(axis=1))


def test_ties_go_to_the_first_row_and_a_nan_row_to_its_first_nan(native_kernels):
    rng = np.random.default_rng(3)
    w = _int8(rng, 5_000, 128)
    w[4_000] = w[1_234] = 127  # two equal largest rows for an all-positive x
    scale = jnp.full(5_000, 0.01, jnp.float32)
    planes = jnp.asarray(kernels.to_nibble_planes(w))
    x = np.abs(rng.standard_normal((2, 128), dtype=np.float32))
    x[1, 5] = np.nan
    exact = kernels.nibble_matmul(jnp.asarray(x), planes, scale)
    got = np.asarray(kernels.nibble_argmax(jnp.asarray(x), planes, scale))
    assert got[0] == 1_234
    assert got[1] == np.asarray(kernels.argmax(exact))[1]


def test_without_the_kernels_the_planes_still_compute_the_int8_product():
    """The fallback (kernels switched off, or not x86) rebuilds the int8 matrix: the same product up to
    the activations' rounding, which the fallback does not do."""
    rng = np.random.default_rng(4)
    w = _int8(rng, 500, 128)
    scale = jnp.asarray(rng.random(500, dtype=np.float32) * 0.01)
    x = jnp.asarray(rng.standard_normal((2, 128), dtype=np.float32))
    planes = jnp.asarray(kernels.to_nibble_planes(w))
    rebuilt = jax.jit(lambda x: jnp.einsum("...i,oi->...o", x, kernels.from_nibble_planes(planes).astype(x.dtype))
                      * scale)(x)
    np.testing.assert_allclose(np.asarray(kernels.int8_matmul(x, jnp.asarray(w), scale, isa="xla")),
                               np.asarray(rebuilt), rtol=1e-6, atol=1e-6)


def test_gemma3s_greedy_steps_pick_the_exact_argmax(native_kernels, engine):
    """Gemma 3 270M's head and the hidden states of a program: the pick that reads half the head is the
    exact argmax at every position."""
    sampler = engine._sampler
    embedder = sampler.params["embedder"]
    planes, scale = embedder["input_embedding"], embedder["input_embedding_scale"]
    if planes.ndim != 3:
        pytest.skip("this engine's head is not in planes (not int8)")
    text = "import numpy as np\n\n\ndef moving_average(values, window):\n    total = 0\n"
    ids = [engine.tokenizer.bos_id] + engine.tokenizer.encode(text, add_bos=False)
    with sampler.locked():
        cache = sampler._place_cache(sampler.new_cache(len(ids)))
        hidden, _ = sampler.prefill_model.apply({"params": sampler.prefill_params}, jnp.asarray([ids], jnp.int32),
                                                cache, jnp.int32(0), len(ids))
    hidden = hidden[0]
    exact = np.asarray(kernels.nibble_matmul(hidden, planes, scale))
    np.testing.assert_array_equal(np.asarray(kernels.nibble_argmax(hidden, planes, scale)), exact.argmax(axis=1))
