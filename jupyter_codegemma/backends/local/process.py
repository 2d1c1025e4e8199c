"""Process-wide settings the engine relies on: the compilation cache and the C heap."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path


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


def limit_heap_arenas() -> None:
    """One malloc arena for the whole process, unless MALLOC_ARENA_MAX says otherwise.

    glibc gives each thread that allocates its own arena (up to 8 per core); XLA's worker threads
    allocate and free their scratch buffers in theirs, and each arena keeps its own freed memory, so
    the process's peak holds several copies of the same temporaries. Measured with the benchmark's
    engine (bench/latency.py --child ours, 2-core AMD EPYC): peak RSS 802-805 MB with glibc's default,
    785 with two arenas, 765-771 with one; keystroke latency, prefill and decode unchanged. A thread
    keeps the arena it first allocated in, so this must run before JAX starts its threads. glibc only:
    elsewhere (and where the variable is set) nothing changes.
    """
    if _libc is not None and "MALLOC_ARENA_MAX" not in os.environ and hasattr(_libc, "mallopt"):
        _libc.mallopt(_M_ARENA_MAX, 1)


_M_ARENA_MAX = -8  # malloc.h


def _load_libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # absent on musl and non-Linux systems
        return libc
    except (OSError, AttributeError):
        return None


_libc = _load_libc()
