"""Process-wide settings (backends/local/process.py), each checked in a fresh interpreter: they
change the whole process, and a thread keeps the malloc arena it first used."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")

# Threads that allocate at the same time (each would get an arena of its own), then glibc's own
# account of its arenas: malloc_info writes one <heap> element per arena.
ARENAS_AFTER_THREADS = r"""
import ctypes, sys, tempfile, threading
from jupyter_codegemma.backends.local import process
if sys.argv[1] == "limit":
    process.configure_heap()
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    blocks = [ctypes.create_string_buffer(200_000) for _ in range(20)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile() as f:
    stream = libc.fopen(f.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    print(open(f.name).read().count("<heap nr="))
"""


# A 16 MB block freed, then a 12 MB one: glibc's default serves the second from the heap (freeing the
# first raised its mmap threshold to 16 MB), where it stays once freed; inside process.model_heap() it
# is mapped (returned when freed); after it, from the heap again (the user's code keeps glibc's speed).
# Prints how many of the 12 MB blocks got a mapping: before, inside and after a model section.
MAPPED_AFTER_A_LARGER_BLOCK = r"""
import ctypes, sys
from jupyter_codegemma.backends.local import process
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.mallinfo2.restype = MallInfo2
def mapped_12mb_block():
    libc.free(ctypes.c_void_p(libc.malloc(16 << 20)))
    before = libc.mallinfo2().hblks
    block = libc.malloc(12 << 20)
    mapped = libc.mallinfo2().hblks - before
    libc.free(ctypes.c_void_p(block))
    return mapped
outside = mapped_12mb_block()
with process.model_heap():
    inside = mapped_12mb_block()
after = mapped_12mb_block()
print(outside, inside, after)
"""


def _run(script: str, mode: str, **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in
               ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")} | env
    out = subprocess.run([sys.executable, "-c", script, mode],
                         capture_output=True, text=True, env=environ, timeout=60, check=True)
    return out.stdout.strip()


def _arenas(mode: str, **env) -> int:
    return int(_run(ARENAS_AFTER_THREADS, mode, **env))


def test_one_heap_arena_for_all_threads():
    assert _arenas("default") > 1  # glibc's default: the threads made arenas of their own
    assert _arenas("limit") == 1


def test_the_users_malloc_arena_max_is_kept():
    assert _arenas("limit", MALLOC_ARENA_MAX="4") > 1


def test_large_blocks_are_mapped_only_while_the_model_runs():
    assert _run(MAPPED_AFTER_A_LARGER_BLOCK, "") == "0 1 0"
    # The user's own thresholds win: the model section changes nothing.
    assert _run(MAPPED_AFTER_A_LARGER_BLOCK, "", MALLOC_MMAP_THRESHOLD_=str(32 << 20)) == "0 0 0"
