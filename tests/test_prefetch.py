"""The head start a load takes before JAX is imported (prefetch.py): an arena for the int8 weights
whose pages a thread faults in, used by the load when the weights fit, given back when not; the
tokenizer, loaded by another thread."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jupyter_codegemma.backends.local import EngineOptions
from jupyter_codegemma.backends.local import prefetch
from jupyter_codegemma.backends.local.weights_on_device import HUGE_PAGE, HostArena

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the host arena is for Linux")


@linux_only
def test_matrices_written_while_the_pages_are_faulted_in_keep_their_bytes(tmp_path):
    """Faulting the pages in (MADV_POPULATE_WRITE) never changes what they hold: matrices put into
    the arena while the thread runs arrive byte for byte, and start where the arena starts."""
    rng = np.random.RandomState(5)
    matrices = [rng.randint(-127, 128, size=(512, 1024)).astype(np.int8) for _ in range(48)]
    path = tmp_path / "weights.bin"
    np.concatenate([m.reshape(-1) for m in matrices]).tofile(path)
    mapped = np.memmap(path, np.int8, "r", shape=(48, 512, 1024))
    arena = HostArena(sum(m.nbytes for m in matrices), populate=True)
    arrays = [arena.put(mapped[i]) for i in range(48)]  # from the file, racing the thread
    arena._populating.join()
    assert arrays[0].unsafe_buffer_pointer() % HUGE_PAGE == 0
    for want, got in zip(matrices, arrays):
        np.testing.assert_array_equal(np.asarray(got), want)
    arena.release_if_unused()  # used: kept
    np.testing.assert_array_equal(np.asarray(arrays[-1]), matrices[-1])


@linux_only
def test_an_arena_that_is_too_small_is_not_used_and_is_given_back():
    import jax
    import jax.numpy as jnp

    from jupyter_codegemma.backends.local.weights_on_device import weights_to_device

    small = HostArena(4096, populate=True)
    params = {"w": np.ones((3, 4096), np.int8), "scale": np.ones(3, np.float32)}
    on_device = weights_to_device(params, jnp.float32, huge_pages=True, arena=small)
    np.testing.assert_array_equal(np.asarray(on_device["w"]), params["w"])
    assert small.fits(4096), "nothing was put in the small arena"
    small.release_if_unused()
    assert small._map.closed
    assert isinstance(jax.tree.leaves(on_device)[0], jax.Array)


def test_no_head_start_where_the_load_could_not_use_one(tmp_path):
    """A model file whose hash was never taken (finding it would read the file); nothing converted
    yet; float weights (no arena, but the tokenizer)."""
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    for head_start in (prefetch.start(str(model), EngineOptions(cache_dir=str(tmp_path / "cache"))),
                       prefetch.start(None, EngineOptions(cache_dir=str(tmp_path / "empty")))):
        assert head_start.arena is None and head_start.sha256 is None
        assert head_start.tokenizer("0" * 64) is None
    assert prefetch.start(None, EngineOptions(dtype="float32")).arena is None


@linux_only
def test_the_default_model_loads_with_the_head_start_it_got_before_jax_is_imported(engine):
    """In a new process, as the kernel loads it (backends.local.load): the head start begins before
    JAX is imported, sized from the converted-weights cache alone; its arena holds every int8 matrix
    and its tokenizer is the engine's."""
    del engine  # the session's engine has put the int8 variant in the converted-weights cache
    script = textwrap.dedent("""
        import sys
        from jupyter_codegemma.backends.local import EngineOptions, prefetch

        head_start = prefetch.start(None, EngineOptions())
        arena = head_start.arena
        assert arena is not None and "jax" not in sys.modules, sorted(m for m in sys.modules if "jax" in m)[:5]
        start, size = arena._bytes.ctypes.data, len(arena._bytes)
        from jupyter_codegemma.backends.local import Engine
        import jax

        engine = Engine.load(None, EngineOptions(warm_up=False), head_start=head_start)
        assert engine.tokenizer is head_start.tokenizer(head_start.sha256)
        matrices = [a for a in jax.tree.leaves(engine._sampler.params) if a.dtype == jax.numpy.int8]
        inside = [start <= a.unsafe_buffer_pointer() < start + size for a in matrices]
        assert matrices and all(inside), inside
        print("ok", len(matrices), round(size / 2**20))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok")


@pytest.mark.parametrize("layout", ["gguf", "hugging-face"])
def test_a_model_loaded_before_gets_a_head_start(tmp_path, layout):
    """The second load of a GGUF file (its hash is remembered) or of a Hugging Face directory (keyed by
    its files' names, sizes and times): the head start finds the converted entry without reading the
    model; the engine takes its tokenizer and its arena (int8 on the CPU) and answers as the first load."""
    from jupyter_codegemma.backends.local import Engine
    from jupyter_codegemma.backends.local import config as configs
    from jupyter_codegemma.backends.local.model import init_params

    config = configs.tiny_gemma3()
    params = init_params(config, seed=4)
    if layout == "gguf":
        from gguf_writer import write_gguf

        path = write_gguf(tmp_path / "tiny.gguf", config, params)
    else:
        from checkpoint_writers import build_hf_model, write_hf

        path = write_hf(tmp_path / "tiny-hf", build_hf_model(config, params))
    options = EngineOptions(cache_dir=str(tmp_path / "cache"), warm_up=False, compilation_cache=False)
    first = Engine.load(str(path), options)  # converts it (and remembers a file's hash), stores the int8 variant
    head_start = prefetch.start(str(path), options)
    assert head_start.sha256 is not None
    second = Engine.load(str(path), options, head_start=head_start)
    assert second.tokenizer is head_start.tokenizer(head_start.sha256)
    assert second.tokenizer.source == str(path)  # as a load from the cache names it
    if head_start.arena is not None:  # int8 on the CPU: the arena holds the weights, so it stays
        assert not head_start.arena._map.closed and head_start.arena.used > 0
    ids = second.tokenize("def f(x):")
    assert second.complete_text(ids, max_new_tokens=4, stop_ids=()).ids == \
        first.complete_text(ids, max_new_tokens=4, stop_ids=()).ids


def test_the_arena_is_sized_from_the_variants_list_of_shapes_or_else_from_its_files_headers(tmp_path):
    """Sizing the arena at a kernel's start reads one list, not ~250 files' headers; an entry stored
    before the list was (or with a damaged list) is sized from the headers, and the list written."""
    from jupyter_codegemma.backends.local.checkpoints import WeightsCache

    cache, key = WeightsCache(tmp_path), "ab" * 32
    params = {"layer_0": {"w": np.ones((3, 5), np.int8), "scale": np.ones(3, np.float32)},
              "embedding": np.ones((7, 2), np.int8)}
    cache.store_variant(key, "int8", params)
    shapes = cache.variant_dir(key, "int8") / "shapes.json"
    assert shapes.exists()
    assert sorted(cache.variant_array_sizes(key, "int8", np.int8)) == [14, 15]
    assert cache.variant_array_sizes(key, "int8", np.float32) == [12]
    for damage in (shapes.unlink, lambda: shapes.write_text("{not json"), lambda: shapes.write_text("[1, 2]"),
                   lambda: shapes.write_text('{"layer_0.w": 5}'),
                   lambda: shapes.write_text('{"layer_0.w": ["zz9", "abc"]}')):
        damage()
        assert sorted(cache.variant_array_sizes(key, "int8", np.int8)) == [14, 15]
        assert shapes.exists()
    assert sorted(cache.variant_array_sizes(key, "int8", np.int8)) == [14, 15]  # from the list written
    assert sorted(p.name for p in cache.variant_dir(key, "int8").iterdir()) == \
        ["done", "embedding.npy", "layer_0.scale.npy", "layer_0.w.npy", "shapes.json"]
