"""Process-wide settings the engine relies on: the compilation cache and the C heap."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from pathlib import Path
from typing import Iterator


def configure_compilation_cache(directory: Path) -> None:
    """Keep every compiled program on disk, so a new process (a new kernel) does not recompile."""
    import jax

    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def release_freed_memory() -> None:
    """Give the heap that XLA's temporary buffers used back to the OS (glibc keeps it otherwise).

    Each compiled program allocates its own scratch buffers; glibc's allocator retains freed
    ones, so a kernel that has run several prompt shapes holds hundreds of MB it does not use.
    """
    if _libc is not None:
        _libc.malloc_trim(0)


def configure_heap() -> None:
    """One malloc arena for the whole process (glibc only; unless MALLOC_ARENA_MAX or glibc's tunables
    set it). glibc gives each thread that allocates an arena of its own (up to 8 per core), and each
    arena keeps what is freed in it: XLA's worker threads allocate and free their scratch buffers in
    theirs, so the peak holds several arenas' worth of the same temporaries. A thread keeps the arena
    it first allocated in, so this must run before JAX starts its threads. Measured with the
    benchmark's engine (bench/latency.py --child ours, 2-core AMD EPYC): peak RSS 802-805 -> 765-771 MB,
    speed unchanged."""
    if _libc is None or not hasattr(_libc, "mallopt"):
        return
    if "MALLOC_ARENA_MAX" not in os.environ and "malloc.arena_max" not in os.environ.get("GLIBC_TUNABLES", ""):
        _libc.mallopt(_M_ARENA_MAX, 1)


@contextlib.contextmanager
def model_heap() -> Iterator[None]:
    """While the model runs (a request holds the sampler): blocks of 8 MB and more get mappings of their
    own, returned to the system when freed; after it, glibc's largest thresholds, as it would have
    raised them itself.

    glibc serves a block above its mmap threshold with a mapping of its own, but raises the threshold
    (up to 32 MB, and the heap's trim threshold to twice that) to the size of each such block freed:
    after the first prompt chunk, XLA's scratch blocks of several MB come from the heap, and the heap
    keeps them. Mapping them instead lowered the benchmark's peak RSS 765-771 -> 723-726 MB. For the
    user's own code in the kernel that would be slow: an elementwise NumPy operation on a 12 MB array
    takes 0.85 ms with glibc's thresholds and 2.5-3.0 ms with every such block mapped afresh. So the low
    threshold holds only while the model runs. Nothing changes where the user's environment sets the
    thresholds (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, GLIBC_TUNABLES), or without glibc."""
    global _model_sections
    if not _own_thresholds():
        yield
        return
    with _heap_lock:
        _model_sections += 1
        if _model_sections == 1:
            _libc.mallopt(_M_TRIM_THRESHOLD, 128 << 10)  # glibc's default
            _libc.mallopt(_M_MMAP_THRESHOLD, MODEL_MMAP_THRESHOLD)
            # A free block the heap kept would serve the next large request before any mapping does.
            _libc.malloc_trim(0)
    try:
        yield
    finally:
        with _heap_lock:
            _model_sections -= 1
            if _model_sections == 0:
                _libc.mallopt(_M_MMAP_THRESHOLD, USER_MMAP_THRESHOLD)
                _libc.mallopt(_M_TRIM_THRESHOLD, 2 * USER_MMAP_THRESHOLD)


def _own_thresholds() -> bool:
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return (_libc is not None and hasattr(_libc, "mallopt")
            and not any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"))
            and "malloc.mmap_threshold" not in tunables and "malloc.trim_threshold" not in tunables)


MODEL_MMAP_THRESHOLD = 8 << 20
USER_MMAP_THRESHOLD = 32 << 20  # glibc's largest dynamic threshold (DEFAULT_MMAP_THRESHOLD_MAX, 64-bit)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # malloc.h
_heap_lock = threading.Lock()
_model_sections = 0


def _load_libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # absent on musl and non-Linux systems
        return libc
    except (OSError, AttributeError):
        return None


_libc = _load_libc()
