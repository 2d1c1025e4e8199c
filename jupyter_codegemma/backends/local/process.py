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


def configure_heap() -> None:
    """glibc's malloc for a process that runs XLA programs: one arena, and a fixed mmap threshold.
    Each only where the user's environment does not set it (MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_,
    GLIBC_TUNABLES); glibc only, elsewhere nothing changes.

    - glibc gives each thread that allocates an arena of its own (up to 8 per core), and each arena
      keeps what is freed in it: XLA's worker threads allocate and free their scratch buffers in
      theirs, so the peak holds several arenas' worth of the same temporaries. A thread keeps the
      arena it first allocated in, so this must run before JAX starts its threads.
    - glibc serves a block above the mmap threshold with a mapping of its own, returned when freed,
      but raises the threshold (up to 32 MB) to the size of each such block freed: after the first
      program's temporaries, blocks of several MB come from the heap and stay there. A fixed
      threshold turns that off.

    Measured with the benchmark's engine (bench/latency.py --child ours, 2-core AMD EPYC, AVX2),
    peak RSS: glibc's defaults 802-805 MB; one arena 765-771; and an 8 MB threshold 726 (1 MB:
    723-725). Keystroke latency, prefill and decode unchanged (within the runs' noise).
    """
    if _libc is None or not hasattr(_libc, "mallopt"):
        return
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "MALLOC_ARENA_MAX" not in os.environ and "malloc.arena_max" not in tunables:
        _libc.mallopt(_M_ARENA_MAX, 1)
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ and "malloc.mmap_threshold" not in tunables:
        _libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


MMAP_THRESHOLD = 8 << 20
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # malloc.h


def _load_libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # absent on musl and non-Linux systems
        return libc
    except (OSError, AttributeError):
        return None


_libc = _load_libc()
