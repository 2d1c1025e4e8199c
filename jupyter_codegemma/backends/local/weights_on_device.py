"""Putting a checkpoint's numpy weight tree on the device in the dtypes the engine computes in."""

from __future__ import annotations

import ctypes
import mmap
import platform
import sys
import threading

import numpy as np

HUGE_PAGE = 2 << 20  # bytes in one x86-64 / ARM64 transparent huge page
_ALIGN = 4096  # each matrix starts on a page: the CPU device uses page-aligned host memory in place


def weights_to_device(params, float_dtype, *, huge_pages: bool = False, arena: "HostArena | None" = None):
    """numpy tree -> device arrays: int8 matrices stay int8, scales (of norms and of int8 rows)
    stay float32 (norms compute in float32 anyway), the other weights become float_dtype.

    With `huge_pages` (the CPU device, on Linux) the int8 matrices go into one host arena advised
    for transparent huge pages (`HostArena`), which the device arrays use in place. A stack of
    layers (model.LayerStack) is written there layer by layer, and each memory-mapped source's
    pages are let go once copied: loading holds the arena and one matrix, not a second copy of
    the weights (memory-mapped pages that were read count in the process's resident memory until
    the mapping closes).

    `arena`, an empty one made earlier (`HostArena(..., populate=True)`, see prefetch.py), is used
    when the matrices fit in it; otherwise a new one is made."""
    import jax
    import jax.numpy as jnp

    if huge_pages and sys.platform.startswith("linux"):
        needed = sum(aligned(a.nbytes) for a in jax.tree_util.tree_leaves(params) if a.dtype == np.int8)
        if not needed:
            arena = None
        elif arena is None or not arena.fits(needed):
            arena = HostArena(needed)
    else:
        arena = None

    def put(path, a):
        if a.dtype == np.int8 and arena is not None:
            return arena.put(a)
        a = np.asarray(a)
        if a.dtype == np.int8:
            return jnp.asarray(a)
        name = str(getattr(path[-1], "key", path[-1]))
        return jnp.asarray(a, dtype=jnp.float32 if name.endswith("scale") else float_dtype)

    return jax.tree_util.tree_map_with_path(put, params)


class HostArena:
    """One anonymous mapping that holds the int8 matrices, advised for transparent huge pages.

    Decoding reads every int8 weight once per token (~260 MB for Gemma 3 270M), as one stream per
    core. In 4 KB pages the stream needs a new address translation every 4 KB; in 2 MB pages, one
    every 2 MB. Measured on a 2-core AMD EPYC (AVX2 kernels), the 72 int8 products of Gemma 3
    270M's 18 layers in one decode step: 9.2-10.5 -> 8.2-8.6 ms. `jax.device_put` of page-aligned host
    memory makes a CPU device array that uses it in place, without a copy, and keeps the numpy view
    (and through it the mapping) alive as long as the array lives. Where the kernel ignores the
    advice (transparent huge pages set to "never"), these are ordinary pages.

    With `populate`, a thread faults the pages in at once (the kernel zeroes them, and compacts
    memory to find huge pages): started before JAX is imported, that work, most of the time it
    takes to fill the arena, runs on another core while the import runs (prefetch.py)."""

    def __init__(self, nbytes: int, *, populate: bool = False):
        # One huge page more than needed, so the first matrix can start on a huge-page boundary.
        self._map = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            try:
                self._map.madvise(mmap.MADV_HUGEPAGE)
            except OSError:
                pass  # a kernel without transparent huge pages: ordinary pages
        self._bytes = np.frombuffer(self._map, np.uint8)
        self._first = self._offset = -self._bytes.ctypes.data % HUGE_PAGE  # the first matrix starts on a huge page
        self._end = self._first + nbytes
        self._populating: threading.Thread | None = None
        if populate:
            self._populating = threading.Thread(target=_populate, args=(self._bytes.ctypes.data + self._first, nbytes),
                                                name="codegemma-arena", daemon=True)
            self._populating.start()

    def fits(self, nbytes: int) -> bool:
        """Whether `nbytes` more fit in the bytes asked for when the arena was made."""
        return self._offset + nbytes <= self._end

    @property
    def used(self) -> int:
        """Bytes taken by what was put here (each matrix rounded up to a page)."""
        return self._offset - self._first

    def release_if_unused(self) -> None:
        """Give the memory back if nothing was put here (the model turned out not to use it)."""
        if self.used or self._map.closed:
            return
        if self._populating is not None:
            self._populating.join()  # its madvise must not touch whatever is mapped here next
        del self._bytes  # the mapping cannot close while an array views it
        self._map.close()

    def put(self, a):
        """A copy of `a` (an array, or a model.LayerStack written layer by layer) in the arena, as a
        device array that uses it in place."""
        import jax

        if self._offset + a.nbytes > len(self._bytes):
            raise ValueError(f"HostArena: {a.nbytes} more bytes do not fit")
        view = self._bytes[self._offset:self._offset + a.nbytes].view(a.dtype).reshape(a.shape)
        for place, part in zip(view, a.layers) if hasattr(a, "layers") else [(view, a)]:
            if not _read_from_file(place, part):
                place[...] = part
                _let_go(part)
        self._offset += aligned(a.nbytes)
        return jax.device_put(view)


# Linux 5.14+: fault the range in as if written, without changing what it holds (so `put` may
# write into pages the thread has not reached). The value is the same on x86-64 and ARM64.
_MADV_POPULATE_WRITE = 23


def _populate(address: int, nbytes: int) -> None:
    """Fault in [address, address + nbytes) ahead of its first writes. ctypes lets go of the GIL
    for the call, so the thread that started it goes on importing. Where the kernel is older or
    the CPU another, nothing happens: the writes fault the pages in, as without it."""
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "aarch64"):
        return
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    madvise(address, nbytes, _MADV_POPULATE_WRITE)  # a failure (EINVAL: an old kernel) costs nothing


def _read_from_file(place: np.ndarray, part) -> bool:
    """Fill `place` with a memory-mapped array's bytes read straight from its file; False when
    `part` is not a contiguous view of a file mapping (then nothing was written).

    Copying from the mapping faults its pages in one 4 KB page at a time, and those pages then
    count in the process's resident memory until let go; a read() copies from the page cache
    without mapping anything. Gemma 3 270M's 268 MB of int8 matrices into the arena: 0.58-0.59 s
    copied, 0.29-0.40 s read (2-core AMD EPYC, warm page cache). The read releases the GIL, so the
    load's other threads run meanwhile."""
    mapped = _memmap_of(part)
    mapping = getattr(mapped, "_mmap", None)
    if (mapping is None or not getattr(mapped, "filename", None) or not isinstance(part, np.ndarray)
            or part.dtype != place.dtype or part.nbytes != place.nbytes
            or not part.flags.c_contiguous or not place.flags.c_contiguous):
        return False
    try:
        # The mapping starts at the allocation boundary at or below the array's file offset.
        mapping_start = mapped.offset - mapped.offset % mmap.ALLOCATIONGRANULARITY
        position = mapping_start + part.ctypes.data - np.frombuffer(mapping, np.uint8).ctypes.data
    except (ValueError, TypeError):  # a closed mapping: copy through it (which raises what it raises)
        return False
    target = memoryview(place.reshape(-1).view(np.uint8))
    with open(mapped.filename, "rb", buffering=0) as f:
        f.seek(position)
        done = 0
        while done < len(target):
            n = f.readinto(target[done:])
            if not n:  # the file is shorter than the mapping said: copy the rest from the mapping
                place.reshape(-1).view(np.uint8)[done:] = part.reshape(-1).view(np.uint8)[done:]
                break
            done += n
    return True


def _let_go(a) -> None:
    """Drop a memory-mapped array's pages from this process (they are read again from the file if
    it is used again): a copied checkpoint matrix no longer counts in its resident memory."""
    mapping = getattr(_memmap_of(a), "_mmap", None)
    if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        try:
            mapping.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):
            pass  # closed, or a platform without it: the pages go when the mapping does


def _memmap_of(a) -> np.memmap | None:
    """The np.memmap `a` is a view of (itself, or a base down its chain of views), or None."""
    while a is not None and not isinstance(a, np.memmap):
        a = getattr(a, "base", None)
    return a


def aligned(nbytes: int) -> int:
    """`nbytes` rounded up to the start of the next page: where the next matrix in an arena starts."""
    return -(-nbytes // _ALIGN) * _ALIGN
