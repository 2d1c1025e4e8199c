"""int8 weights: the quantizer, the native kernel against its pure-XLA fallback, and a tiny
model decoding with int8 weights the same way it runs a full pass."""

from __future__ import annotations

import gc
import os
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jupyter_codegemma.backends.local import config as configs
from jupyter_codegemma.backends.local import native as kernels, quantize
from jupyter_codegemma.backends.local.model import Transformer, init_params
from jupyter_codegemma.backends.local.sampler import Sampler
from jupyter_codegemma.backends.local.weights_on_device import HUGE_PAGE, weights_to_device


def test_rows_are_quantized_symmetrically_with_one_scale_each():
    w = np.random.RandomState(0).randn(300, 64).astype(np.float32)
    w[3] = 0.0  # an all-zero row must not divide by zero
    q, scale = kernels.quantize_rows(w, chunk=64)  # several chunks
    assert q.dtype == np.int8 and scale.shape == (300,)
    assert np.abs(q).max() == 127 and not q[3].any()
    # Rounding to the nearest step: at most half a step off.
    assert np.all(np.abs(q * scale[:, None] - w) <= scale[:, None] / 2 + 1e-7)


@pytest.mark.parametrize("rows,n,k", [(1, 1536, 640), (8, 640, 2048), (3, 1001, 128), (1, 7, 64),
                                     # prompt chunks (AMX where it runs), a ragged last tile of
                                     # rows, and a shape AMX does not take (N % 16 != 0)
                                     (16, 1536, 640), (40, 640, 2048), (133, 4096, 640), (20, 1001, 128)])
def test_int8_matmul_equals_the_dequantized_product(rows, n, k):
    """Native or not, the product is the float product of the dequantized weights, up to the
    kernels' rounding of the activations to int8 blocks (a relative 1/127 per block)."""
    kernels.enable_native()
    rng = np.random.RandomState(1)
    q, scale = kernels.quantize_rows(rng.randn(n, k).astype(np.float32))
    x = rng.randn(rows, k).astype(np.float32)
    y = np.asarray(jax.jit(kernels.int8_matmul)(jnp.asarray(x), jnp.asarray(q), jnp.asarray(scale)))
    expected = x @ (q.astype(np.float32) * scale[:, None]).T
    tolerance = 0.02 if kernels.native_enabled() else 1e-5
    assert y.shape == (rows, n)
    assert np.abs(y - expected).max() <= tolerance * np.abs(expected).max()


def _block_formula(x: np.ndarray, q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """What every native kernel computes (numpy): activations rounded to int8 in blocks of 64
    (scale max|x| / 127, round half to even, in float32 as quantize_block.h), exact integer
    sums per block, then y = scale[n] · Σ_b sx[m, b] · Σ_{k in b} W[n, k] · q[m, k]."""
    m, k = x.shape
    blocks = x.reshape(m, k // kernels.BLOCK, kernels.BLOCK)
    sx = np.abs(blocks).max(-1) / np.float32(127)
    inv = np.where(sx > 0, np.float32(1) / np.where(sx > 0, sx, 1), 0).astype(np.float32)
    qx = np.rint(blocks * inv[..., None]).astype(np.int64)
    wb = q.reshape(q.shape[0], k // kernels.BLOCK, kernels.BLOCK).astype(np.int64)
    sums = np.einsum("mbk,nbk->mnb", qx, wb).astype(np.float64)  # exact
    return (sums * sx[:, None, :]).sum(-1) * scale[None, :]


def _native_classes() -> list[str]:
    kernels.enable_native()
    return [isa for isa in kernels.runnable_isa_classes() if isa != "xla"]


@pytest.mark.parametrize("rows,n,k", [(1, 1536, 640), (1, 7, 64), (5, 1001, 128), (40, 640, 2048), (133, 4096, 640)])
def test_every_native_kernel_computes_the_int8_block_formula(rows, n, k):
    """Each kernel this CPU runs (the chosen one and the lower ones: VNNI and AVX2 under AMX)
    against a numpy reference of the same rounding: equal up to float summation order."""
    if not _native_classes():
        pytest.skip(f"no native kernels here: {kernels.native_unavailable_reason()}")
    rng = np.random.RandomState(k + rows)
    q, scale = kernels.quantize_rows(rng.randn(n, k).astype(np.float32))
    x = rng.randn(rows, k).astype(np.float32)
    x[0, :kernels.BLOCK] = 0.0  # an all-zero block: scale 0, no division by zero
    expected = _block_formula(x, q, scale)
    for isa in _native_classes():
        y = np.asarray(jax.jit(kernels.int8_matmul, static_argnames="isa")(x, q, scale, isa=isa))
        np.testing.assert_allclose(y, expected, rtol=0, atol=2e-6 * np.abs(expected).max(), err_msg=isa)


def test_native_kernels_run_where_the_cpu_has_them():
    """On x86-64 with AVX2 and FMA (or better) and g++, the kernels must build and load (a
    compile error would otherwise only show as slower float32), and the best class the CPU has
    is chosen unless a switch turns it off; elsewhere the reason is given."""
    enabled = kernels.enable_native()
    flags = _cpu_flags()
    switched_off = os.environ.get("CODEGEMMA_NATIVE_KERNELS", "1") == "0" or any(
        os.environ.get(name, "1") == "0" for name in kernels.SWITCHES.values())
    if shutil.which("g++") and {"avx2", "fma"} <= flags and not switched_off:
        assert enabled, kernels.native_unavailable_reason()
        best = "avx512-vnni" if {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"} <= flags else "avx2"
        assert kernels.isa_class() in ("amx", best) if best != "avx2" else kernels.isa_class() == "avx2"
        assert best in kernels.cpu_isa_classes()
    else:
        assert enabled or kernels.native_unavailable_reason()


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


def test_a_chunk_of_rows_equals_its_rows_one_at_a_time():
    """Prompt chunks (AMX tiles, or the multi-row path of the other kernels) round the
    activations as decoding does: a chunk of rows gives what the rows give one at a time, up
    to float summation order (bit for bit on AVX2 and AVX-512 VNNI)."""
    if not _native_classes():
        pytest.skip(f"no native kernels here: {kernels.native_unavailable_reason()}")
    if {"amx_tile", "amx_int8"} <= _cpu_flags():
        assert kernels.amx_enabled() or os.environ.get("CODEGEMMA_AMX") == "0", kernels.native_unavailable_reason()
    rng = np.random.RandomState(4)
    q, scale = kernels.quantize_rows(rng.randn(1536, 640).astype(np.float32))
    matmul = jax.jit(kernels.int8_matmul, static_argnames="isa")
    # A draft check's 8 rows (split like decoding: one range of weight rows per core) and a
    # prompt chunk's rows with a ragged last tile (shared out in small chunks).
    for rows in (8, kernels.AMX_MIN_ROWS + 21):
        x = rng.randn(rows, 640).astype(np.float32)
        for isa in _native_classes():
            chunk = np.asarray(matmul(x, q, scale, isa=isa))
            one_by_one = np.concatenate([np.asarray(matmul(row[None], q, scale, isa=isa)) for row in x])
            atol = 1e-5 * np.abs(one_by_one).max() if isa == "amx" else 0
            np.testing.assert_allclose(chunk, one_by_one, rtol=0, atol=atol, err_msg=f"{isa}, {rows} rows")


def test_quantized_tree_keeps_norms_in_float32():
    config = configs.tiny_gemma3()
    params = jax.tree.map(np.asarray, init_params(config))
    q = quantize.quantize_int8(params)
    assert quantize.is_quantized(q)
    layer = q["layer_0"]
    assert layer["attn"]["qkv"]["w"].dtype == np.int8 and layer["attn"]["qkv"]["scale"].dtype == np.float32
    assert layer["pre_attention_norm"]["scale"].dtype == np.float32
    assert q["embedder"]["input_embedding_scale"].shape == (config.vocab_size,)


@pytest.mark.skipif(jax.devices()[0].platform != "cpu" or not sys.platform.startswith("linux"),
                    reason="the host arena is for the CPU device on Linux")
def test_int8_weights_go_into_one_huge_page_arena_that_the_cpu_device_uses_in_place():
    """The int8 matrices are copied once, into one arena that starts on a huge page, and the
    device arrays use it in place; they keep their values after the numpy tree is gone."""
    params = quantize.quantize_int8(jax.tree.map(np.asarray, init_params(configs.tiny_gemma3())))
    int8 = [np.array(a) for a in jax.tree_util.tree_leaves(params) if a.dtype == np.int8]
    on_device = weights_to_device(params, jnp.float32, huge_pages=True)
    del params
    gc.collect()
    _ = [np.ones(1 << 16) for _ in range(64)]  # reuse freed memory, if anything was freed
    arrays = [a for a in jax.tree_util.tree_leaves(on_device) if a.dtype == jnp.int8]
    assert len(arrays) == len(int8)
    pointers = [a.unsafe_buffer_pointer() for a in arrays]
    span = sum(-(-a.nbytes // 4096) * 4096 for a in int8)
    assert pointers[0] % HUGE_PAGE == 0
    assert all(pointers[0] <= p < pointers[0] + span for p in pointers), "a matrix was copied out of the arena"
    for expected, actual in zip(int8, arrays):
        np.testing.assert_array_equal(np.asarray(actual), expected)
    floats = [a for a in jax.tree_util.tree_leaves(on_device) if a.dtype != jnp.int8]
    assert floats and all(a.dtype == jnp.float32 for a in floats)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the host arena is for the CPU device on Linux")
def test_memory_mapped_matrices_are_read_from_their_files_into_the_arena(tmp_path):
    """Matrices memory-mapped from a file, at offsets below and above the mapping granularity and as
    slices of a larger mapping, arrive in the arena byte for byte, read from the file (not copied
    through the mapping); what is not a file mapping, or needs converting, is left to the caller."""
    from jupyter_codegemma.backends.local.weights_on_device import HostArena, _read_from_file

    rng = np.random.RandomState(3)
    whole = rng.randint(-127, 128, size=(6, 300, 64)).astype(np.int8)
    path = tmp_path / "stack.bin"
    whole.tofile(path)
    offset = 3 * 300 * 64  # past the first 4 KB pages: the mapping starts below the array
    parts = [np.memmap(path, np.int8, "r", offset=0, shape=(300, 64)),
             np.memmap(path, np.int8, "r", offset=offset, shape=(2, 300, 64))[1],  # a slice of a mapping
             np.memmap(path, np.int8, "r", offset=offset + 7, shape=(100, 64))]  # not on any boundary
    expected = [whole[0], whole[4], whole.reshape(-1)[offset + 7:offset + 7 + 6400].reshape(100, 64)]
    arena = HostArena(sum(p.nbytes for p in parts) + 3 * 4096)
    for part, want in zip(parts, expected):
        place = np.zeros_like(want)
        assert _read_from_file(place, part)
        np.testing.assert_array_equal(place, want)
        np.testing.assert_array_equal(np.asarray(arena.put(part)), want)
    assert not _read_from_file(np.zeros((300, 64), np.int8), whole[0])  # not mapped: the caller copies
    assert not _read_from_file(np.zeros((300, 32), np.int16), parts[0])  # another dtype: the caller converts


def test_int8_decoding_matches_a_full_int8_pass_and_stays_close_to_float():
    """Prefill + cached decoding with int8 weights equals one full pass with the same weights
    (the cache, buckets and windows work alike), and tracks the float model's logits."""
    config = configs.tiny_gemma3()
    params = init_params(config, seed=1)
    q = jax.tree.map(jnp.asarray, quantize.quantize_int8(jax.tree.map(np.asarray, params)))
    sampler = Sampler(Transformer(config), q, 128, prefill_buckets=(16,))
    prompt = [int(i) for i in np.random.RandomState(0).randint(3, config.vocab_size, size=37)]
    steps = []
    generated = list(sampler.generate(prompt, max_new_tokens=12, on_logits=lambda l: steps.append(np.asarray(l[0]))))
    full = sampler.forward_logits(prompt + generated)
    # The native kernel rounds activations to int8, so float noise of 1e-6 can move a value by
    # one rounding step: the two agree to that step, not to float precision.
    tolerance = 0.02 * np.abs(full).max() if kernels.native_enabled() else 1e-4
    for i, logits in enumerate(steps):
        np.testing.assert_allclose(logits, full[len(prompt) - 1 + i], atol=tolerance, rtol=0)
    float_logits = Sampler(Transformer(config), params, 128).forward_logits(prompt)
    int8_logits = sampler.forward_logits(prompt)
    assert np.abs(int8_logits - float_logits).max() < 0.05 * np.abs(float_logits).max()


def test_short_chunks_use_the_decode_weights_and_long_ones_the_prefill_weights():
    """With separate prefill weights (float) and decode weights (int8), prefix reuse that
    prefills a short chunk gives the same tokens as prefilling everything afresh."""
    config = configs.tiny_gemma3()
    params = init_params(config, seed=2)
    q = jax.tree.map(jnp.asarray, quantize.quantize_int8(jax.tree.map(np.asarray, params)))
    dense = {**quantize.dense_layers(params), "embedder": q["embedder"]}

    def make():
        return Sampler(Transformer(config), q, 128, prefill_buckets=(16, 32), prefill_params=dense)

    prompt = [int(i) for i in np.random.RandomState(3).randint(3, config.vocab_size, size=40)]
    sampler = make()
    list(sampler.generate(prompt, max_new_tokens=4))
    longer = prompt + [5, 6, 7]
    assert list(sampler.generate(longer, max_new_tokens=8)) == list(make().generate(longer, max_new_tokens=8))


def test_every_kernel_source_counts_in_the_build_key():
    """A changed header must rebuild the library (and re-export saved programs, programs.py):
    both key on kernels._SOURCES and _HEADERS, which must list every C++ file there is."""
    folder = kernels._SOURCES[0].parent
    on_disk = {p.name for p in folder.iterdir() if p.suffix in (".cc", ".h")}
    assert on_disk == {p.name for p in (*kernels._SOURCES, *kernels._HEADERS)}
