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
    process.limit_heap_arenas()
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


def _arenas(mode: str, **env) -> int:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    out = subprocess.run([sys.executable, "-c", ARENAS_AFTER_THREADS, mode],
                         capture_output=True, text=True, env=environ, timeout=60, check=True)
    return int(out.stdout.strip())


def test_one_heap_arena_for_all_threads():
    assert _arenas("default") > 1  # glibc's default: the threads made arenas of their own
    assert _arenas("limit") == 1


def test_the_users_malloc_arena_max_is_kept():
    assert _arenas("limit", MALLOC_ARENA_MAX="4") > 1
