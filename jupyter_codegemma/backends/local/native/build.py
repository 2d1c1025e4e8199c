"""How the native kernels are compiled: the sources, the flags and the one g++ command.

Two callers share it, so the library a wheel carries and the one a developer's checkout builds
are the same: the wheel's build hook (`hatch_build.py`, which loads this file by path, before the
package or jax can be imported) and the developer's fallback in `__init__.py` (g++ on first use,
into the cache directory). It therefore imports nothing beyond the standard library; the caller
passes the XLA FFI headers' folder (`jax.ffi.include_dir()`).

A prebuilt library sits in `prebuilt/` beside this file (only in an installed wheel), with a stamp
naming the sources' key it was built from and the jaxlib it was built against. The key decides
whether the library may be used; the jaxlib version is only recorded, because the XLA FFI is
ABI-stable across jaxlib versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
SOURCES = tuple(HERE / name for name in ("int8_matmul.cc", "amx_matmul.cc", "avx2_matmul.cc", "decode_attention.cc",
                                               "argmax.cc", "nibble_head.cc", "cpu_features.cc"))
HEADERS = tuple(HERE / name for name in ("parallel_for.h", "quantize_block.h", "int8_matmul_signature.h", "avx2_sum.h"))
COMPILER = "g++"
# No instruction-set flags: each source enables its own for its own functions (target pragmas),
# so one library holds every variant and loads on any x86-64 CPU; AMX instructions run only after
# the process has asked Linux for them (CodegemmaAmxRequest).
FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC")

PREBUILT_DIR = "prebuilt"  # relative to this folder, inside an installed wheel
LIBRARY_NAME = "codegemma_kernels.so"
STAMP_NAME = "codegemma_kernels.json"


def source_key() -> str:
    """What the library is built from: every source and header, and the flags (16 hex digits)."""
    key = hashlib.sha256()
    for path in (*SOURCES, *HEADERS):
        key.update(path.read_bytes())
    key.update(" ".join(FLAGS).encode())
    return key.hexdigest()[:16]


def compile_library(out_path: Path | str, include_dir: Path | str, timeout: float = 300) -> Path:
    """Compile every source into one shared library at out_path (raises CalledProcessError with
    g++'s messages, or FileNotFoundError without g++). Written beside it first and renamed, so a
    second process never loads half a file."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".so", dir=out_path.parent)
    os.close(fd)
    try:
        subprocess.run([COMPILER, *FLAGS, "-I", str(include_dir), *map(str, SOURCES), "-o", tmp],
                       check=True, capture_output=True, text=True, timeout=timeout)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path


def write_stamp(library: Path | str, jaxlib_version: str) -> Path:
    """The stamp beside a library built now: the sources' key and the jaxlib it was built against."""
    stamp = Path(library).with_name(STAMP_NAME)
    stamp.write_text(json.dumps({"source_key": source_key(), "jaxlib": jaxlib_version}) + "\n", encoding="utf-8")
    return stamp


def read_stamp(library: Path | str) -> dict:
    """The stamp beside a library ({} when there is none or it does not parse)."""
    try:
        stamp = json.loads(Path(library).with_name(STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}
