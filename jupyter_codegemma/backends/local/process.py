"""Process-wide settings the engine relies on: the compilation cache and the C heap."""

from __future__ import annotations

import ctypes
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


def _load_libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # absent on musl and non-Linux systems
        return libc
    except (OSError, AttributeError):
        return None


_libc = _load_libc()
