"""Hand-written CPU kernels for what XLA's CPU backend does slowly, with pure-XLA fallbacks.

`int8_matmul(x, w, scale)` multiplies activations by int8 weights with one scale per output
row. XLA's CPU matrix-vector products on int8 (or bfloat16) operands run at a few GB/s, so
on an x86 CPU with AVX-512 VNNI it calls `int8_matmul.cc` through the XLA FFI instead, and
for several rows at once (prompt chunks, draft checks: at least `AMX_MIN_ROWS` rows)
`amx_matmul.cc`, where the CPU has AMX and Linux grants it to the process. The sources are compiled with g++ on first use into the cache
directory (a few seconds, once per jaxlib version) and loaded from there afterwards. Anywhere
else — no g++, another CPU, a GPU or TPU — the same function is a plain einsum on the
dequantized weights.

Both kernels round the activations to int8 the same way (blocks of 64, as llama.cpp does), so
they differ only in float summation order; the fallback does not round them.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import subprocess
import tempfile
import threading
from pathlib import Path

import jax
import jax.numpy as jnp

_HERE = Path(__file__).parent
_SOURCES = (_HERE / "int8_matmul.cc", _HERE / "amx_matmul.cc")
_HEADERS = (_HERE / "parallel_for.h", _HERE / "quantize_block.h", _HERE / "int8_matmul_signature.h")
_TARGET = "codegemma_int8_matmul"
_AMX_TARGET = "codegemma_amx_int8_matmul"
FFI_TARGETS = (_TARGET, _AMX_TARGET)  # what a traced program may call (programs.py exports them)
# Only the instruction sets the VNNI kernel uses, never -march=native: AMX instructions run only
# after the process has asked Linux for them, so amx_matmul.cc enables them for its own
# functions alone, and they are called only after CodegemmaAmxRequest() said yes.
_FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni",
          "-mfma")
_CPU_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512_vnni")
BLOCK = 64  # the VNNI kernel needs K to be a multiple of this
AMX_TILE = 16  # the AMX kernel needs N to be a multiple of this (and K of BLOCK)
# From two activation rows on, AMX is faster than VNNI (it computes 16 rows in one pass, and
# a tile reads the weights straight from memory); decoding (one row) stays on the VNNI kernel.
# Measured on Gemma 3 270M's shapes: 8 rows through the output head 10.8 ms (VNNI 18.7 ms),
# 16 rows 12.0 ms (26.6 ms); one row 10.2 ms (8.8 ms).
AMX_MIN_ROWS = 2

_lock = threading.Lock()
_state: dict[str, object] = {}  # "ok": bool once decided, "why": the reason when not


def _cpu_has_vnni() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return all(flag in flags for flag in _CPU_FLAGS)
    except OSError:
        pass
    return False


def _build(cache_dir: Path) -> Path:
    """Compile the kernel once per (source, flags, jaxlib) into cache_dir; returns the .so path."""
    import jaxlib

    key = hashlib.sha256()
    for path in (*_SOURCES, *_HEADERS):
        key.update(path.read_bytes())
    key.update(" ".join(_FLAGS).encode() + jaxlib.__version__.encode())
    library = cache_dir / f"codegemma_kernels-{key.hexdigest()[:16]}.so"
    if library.exists():
        return library
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".so", dir=cache_dir)
    os.close(fd)
    try:
        subprocess.run(["g++", *_FLAGS, "-I", jax.ffi.include_dir(), *map(str, _SOURCES), "-o", tmp],
                       check=True, capture_output=True, text=True, timeout=300)
        os.replace(tmp, library)  # atomic: a second process never loads half a file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return library


def enable_native(cache_dir: Path | None = None) -> bool:
    """Build (once) and register the CPU kernels; False, with `native_unavailable_reason()`, if
    they cannot run here. The AMX kernel is registered too where the CPU and Linux allow it
    (`amx_enabled()`), unless CODEGEMMA_AMX=0. Safe to call from several threads and several times."""
    with _lock:
        if "ok" in _state:
            return bool(_state["ok"])
        _state["ok"], _state["why"], _state["amx"] = False, "", False
        if os.environ.get("CODEGEMMA_NATIVE_KERNELS", "1") == "0":
            _state["why"] = "disabled by CODEGEMMA_NATIVE_KERNELS=0"
        elif jax.default_backend() != "cpu":
            _state["why"] = f"the default backend is {jax.default_backend()}, not cpu"
        elif not _cpu_has_vnni():
            _state["why"] = "this CPU lacks AVX-512 VNNI"
        else:
            from ..checkpoints import default_cache_dir

            try:
                library = _build(Path(cache_dir) if cache_dir else default_cache_dir() / "kernels")
                loaded = ctypes.cdll.LoadLibrary(str(library))
                jax.ffi.register_ffi_target(_TARGET, jax.ffi.pycapsule(loaded.CodegemmaInt8Matmul), platform="cpu")
                _state["ok"] = True
                if os.environ.get("CODEGEMMA_AMX", "1") != "0" and loaded.CodegemmaAmxRequest() == 1:
                    jax.ffi.register_ffi_target(_AMX_TARGET, jax.ffi.pycapsule(loaded.CodegemmaAmxInt8Matmul),
                                                platform="cpu")
                    _state["amx"] = True
            except (OSError, subprocess.SubprocessError) as e:
                detail = getattr(e, "stderr", "") or str(e)
                _state["why"] = f"building the int8 kernel failed: {detail.strip()[-500:]}"
        return bool(_state["ok"])


def native_enabled() -> bool:
    return bool(_state.get("ok"))


def amx_enabled() -> bool:
    """Whether prompt chunks multiply with AMX tiles (see enable_native)."""
    return bool(_state.get("amx"))


def describe() -> str:
    """Which native kernels multiply int8 weights in this process ("xla": none, the fallback)."""
    if not native_enabled():
        return "xla"
    return "avx512-vnni + amx-int8" if amx_enabled() else "avx512-vnni"


def native_unavailable_reason() -> str:
    return str(_state.get("why", "not tried"))


def int8_matmul(x: jax.Array, w: jax.Array, scale: jax.Array) -> jax.Array:
    """x [..., K] · w [N, K] (int8) scaled by scale [N] -> [..., N] in x's dtype."""
    *lead, k = x.shape
    n = w.shape[0]
    rows = math.prod(lead)
    if amx_enabled() and rows >= AMX_MIN_ROWS and k % BLOCK == 0 and n % AMX_TILE == 0:
        target = _AMX_TARGET
    elif native_enabled() and k % BLOCK == 0:
        target = _TARGET
    else:
        return (jnp.einsum("...i,oi->...o", x, w.astype(x.dtype)) * scale.astype(x.dtype))
    y = jax.ffi.ffi_call(target, jax.ShapeDtypeStruct((rows, n), jnp.float32))(
        x.reshape(rows, k).astype(jnp.float32), w, scale.astype(jnp.float32))
    return y.reshape(*lead, n).astype(x.dtype)


def quantize_rows(w, chunk: int = 16384) -> tuple:
    """A float weight [N, K] -> (int8 [N, K], float32 scale [N]), symmetric per row (numpy).

    Works through `chunk` rows at a time, so quantizing a memory-mapped embedding of hundreds
    of MB never holds a second float copy of it."""
    import numpy as np

    n = w.shape[0]
    q = np.empty(w.shape, np.int8)
    scale = np.empty(n, np.float32)
    for begin in range(0, n, chunk):
        rows = np.asarray(w[begin:begin + chunk], dtype=np.float32)
        amax = np.abs(rows).max(axis=-1)
        s = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        q[begin:begin + chunk] = np.clip(np.rint(rows / s[:, None]), -127, 127)
        scale[begin:begin + chunk] = s
    return q, scale
