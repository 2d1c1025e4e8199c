"""The head start a load takes before JAX is imported (prefetch.py): an arena for the int8 weights
whose pages a thread faults in, used by the load when the weights fit, given back when not."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jupyter_codegemma.backends.local import EngineOptions
from jupyter_codegemma.backends.local.prefetch import reserve_arena
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


def test_no_arena_where_the_load_would_not_use_one(tmp_path):
    """float weights; a model file whose hash was never taken (finding it would read the file)."""
    assert reserve_arena(None, EngineOptions(dtype="float32")) is None
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    assert reserve_arena(str(model), EngineOptions(cache_dir=str(tmp_path / "cache"))) is None
    assert reserve_arena(None, EngineOptions(cache_dir=str(tmp_path / "empty"))) is None  # nothing converted yet


@linux_only
def test_the_default_model_loads_into_the_arena_reserved_before_jax_is_imported(engine):
    """In a new process, as the kernel loads it (backends.local.load): the arena is reserved before
    JAX is imported, sized from the converted-weights cache alone, and holds every int8 matrix."""
    del engine  # the session's engine has put the int8 variant in the converted-weights cache
    script = textwrap.dedent("""
        import sys
        from jupyter_codegemma.backends.local import EngineOptions
        from jupyter_codegemma.backends.local.prefetch import reserve_arena

        arena = reserve_arena(None, EngineOptions())
        assert arena is not None and "jax" not in sys.modules, sorted(m for m in sys.modules if "jax" in m)[:5]
        start, size = arena._bytes.ctypes.data, len(arena._bytes)
        from jupyter_codegemma.backends.local import Engine
        import jax

        engine = Engine.load(None, EngineOptions(warm_up=False), arena=arena)
        matrices = [a for a in jax.tree.leaves(engine._sampler.params) if a.dtype == jax.numpy.int8]
        inside = [start <= a.unsafe_buffer_pointer() < start + size for a in matrices]
        assert matrices and all(inside), inside
        print("ok", len(matrices), round(size / 2**20))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok")
