"""Hand-written CPU kernels for what XLA's CPU backend does slowly, with pure-XLA fallbacks.

`int8_matmul(x, w, scale)` multiplies activations by int8 weights with one scale per output
row. XLA's CPU matrix-vector products on int8 (or bfloat16) operands run at a few GB/s, so on
x86-64 it calls a C++ kernel through the XLA FFI instead, chosen at load time by the CPU the
process runs on (cpuid, `cpu_features.cc`), best first:

- "amx": prompt chunks and draft checks (at least `AMX_MIN_ROWS` rows) on AMX int8 tiles
  (`amx_matmul.cc`, where Linux grants AMX to the process), decoding on AVX-512 VNNI;
- "avx512-vnni": everything on AVX-512 VNNI (`int8_matmul.cc`);
- "avx2": everything on AVX2 + FMA (`avx2_matmul.cc`: most laptops, older servers);
- "xla": no kernel (no prebuilt library and no g++, ARM64, a GPU or TPU, or switched off): a
  plain einsum on the dequantized weights.

`CODEGEMMA_AMX=0`, `CODEGEMMA_AVX512=0` and `CODEGEMMA_AVX2=0` each remove one kernel (and
`CODEGEMMA_AVX512=0` AMX with it, whose CPUs decode with the AVX-512 kernel), so the next path
down can be forced and tested on any machine; `CODEGEMMA_NATIVE_KERNELS=0` removes them all.

`decode_attention(q, k, v, ...)` is the attention of a decode step or a draft check for the int8 model,
read where the keys and values lie in the KV cache, float32 or float16 (`decode_attention.cc`, AVX2 +
FMA + F16C, on every class above "xla"): XLA copies the cache's view out before multiplying it (and
widens a float16 one slowly). Longer prompt chunks attend in XLA.
`argmax(x)` picks greedy tokens (`argmax.cc`), as jnp.argmax does, at the memory's speed.

The output head (the tied embedding, the largest matrix) is stored in two planes of 4-bit halves:
`nibble_planes.py` (re-exported here) splits and multiplies it, exactly or for a greedy step's token
from the high plane alone (`nibble_head.cc`, AVX2 + FMA, every class above "xla").

The library is built without `-m` flags: each kernel enables its own instruction set for its
own functions (target pragmas), so one library holds every variant and loads on any x86-64 CPU.
`build.py` holds the one recipe (sources, flags, the g++ command). Where it comes from, first
found first (`kernels_from()` says which, `codegemma info` shows it):

- "wheel": the library a wheel carries, compiled when the wheel was built (`hatch_build.py`),
  used when its stamp names the key of the sources beside it, so no compiler is needed;
- "built with g++": the developer's fallback (a checkout, an editable install, a wheel built
  where g++ was missing, or edited sources): compiled on first use into the cache directory (a
  few seconds, once per sources and jaxlib version) and loaded from there afterwards;
- "none": neither worked; the "xla" class, with the reason in `native_unavailable_reason()`.

Every kernel rounds the activations to int8 the same way, bit for bit (blocks of 64, as
llama.cpp does; quantize_block.h), so they differ only in float summation order; the fallback
does not round them.
"""

from __future__ import annotations

import ctypes
import math
import os
import platform
import shutil
import subprocess
import threading
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from . import build

_SOURCES, _HEADERS = build.SOURCES, build.HEADERS  # what the library is built from (programs.py keys on them too)
_TARGET = "codegemma_int8_matmul"  # AVX-512 VNNI
_AMX_TARGET = "codegemma_amx_int8_matmul"
_AVX2_TARGET = "codegemma_avx2_int8_matmul"
_ATTENTION_TARGET = "codegemma_decode_attention"  # AVX2 + FMA + F16C, every class above "xla"
_ATTENTION_F16_TARGET = "codegemma_decode_attention_f16"  # the same over a float16 cache
_ARGMAX_TARGET = "codegemma_argmax"  # likewise
_NIBBLE_MATMUL_TARGET = "codegemma_nibble_matmul"  # the output head in 4-bit planes (AVX2 + FMA), likewise
_NIBBLE_ARGMAX_TARGET = "codegemma_nibble_argmax"
# What a traced program may call (programs.py exports them).
FFI_TARGETS = (_TARGET, _AMX_TARGET, _AVX2_TARGET, _ATTENTION_TARGET, _ATTENTION_F16_TARGET, _ARGMAX_TARGET,
               _NIBBLE_MATMUL_TARGET, _NIBBLE_ARGMAX_TARGET)
# decode_attention's limits (decode_attention.cc): query rows per KV head (a draft check's 8
# positions of 4 query heads for Gemma 3 270M) and head_dim.
ATTENTION_MAX_ROWS, ATTENTION_MAX_DIM = 32, 512
# Bits of CodegemmaCpuFeatures() (cpu_features.cc).
_AVX2_FMA, _AVX512_VNNI, _AMX_INT8 = 1, 2, 4
ISA_CLASSES = ("amx", "avx512-vnni", "avx2", "xla")  # best first
# One environment switch per kernel: "0" takes that kernel (and the classes above it) away.
SWITCHES = {"amx": "CODEGEMMA_AMX", "avx512-vnni": "CODEGEMMA_AVX512", "avx2": "CODEGEMMA_AVX2"}
BLOCK = 64  # every kernel needs K to be a multiple of this
AMX_TILE = 16  # the AMX kernel needs N to be a multiple of this (and K of BLOCK)
# From two activation rows on, AMX is faster than VNNI (it computes 16 rows in one pass, and
# a tile reads the weights straight from memory); decoding (one row) stays on the VNNI kernel.
# Measured on Gemma 3 270M's shapes: 8 rows through the output head 10.8 ms (VNNI 18.7 ms),
# 16 rows 12.0 ms (26.6 ms); one row 10.2 ms (8.8 ms).
AMX_MIN_ROWS = 2

_lock = threading.Lock()
# "ok": bool once decided; "isa": the class chosen (ISA_CLASSES); "why": the reason for "xla",
# or for the classes skipped above the chosen one; "from": where the library came from.
_state: dict[str, object] = {}


FROM_WHEEL, FROM_GXX, FROM_NOWHERE = "wheel", "built with g++", "none"  # kernels_from()


class _NoLibrary(Exception):
    """Neither a usable prebuilt library nor a g++ build: the message says why."""


def _shipped_library() -> tuple[Path | None, str]:
    """The library the installed wheel carries, if it was built from the sources beside it; else
    None and why it is not used ("" when there is none, as in a checkout)."""
    library = Path(__file__).parent / build.PREBUILT_DIR / build.LIBRARY_NAME
    if not library.is_file():
        return None, ""
    if build.read_stamp(library).get("source_key") != build.source_key():
        return None, "the package's prebuilt kernels were built from other sources"
    return library, ""


def _build(cache_dir: Path) -> Path:
    """The developer's fallback: compile the kernels once per (sources, flags, jaxlib) into
    cache_dir with g++; returns the .so path."""
    import jaxlib

    library = cache_dir / f"codegemma_kernels-{build.source_key()}-jaxlib{jaxlib.__version__}.so"
    if not library.exists():
        build.compile_library(library, jax.ffi.include_dir())
    return library


def _open_library(cache_dir: Path) -> tuple[ctypes.CDLL, str, str]:
    """The kernels' library loaded: the wheel's when it fits, else one g++ builds. Returns it,
    where it came from (FROM_WHEEL or FROM_GXX) and why the wheel's was passed over ("" when it
    was used or there is none); raises _NoLibrary when neither works."""
    shipped, passed_over = _shipped_library()
    if shipped is not None:
        try:
            return ctypes.cdll.LoadLibrary(str(shipped)), FROM_WHEEL, ""
        except OSError as e:  # e.g. a libstdc++ older than the one it was built with
            passed_over = f"the package's prebuilt kernels did not load ({e})"
    before = f"{passed_over}, and " if passed_over else "no prebuilt kernels in the package, and "
    if shutil.which(build.COMPILER) is None:
        raise _NoLibrary(f"{before}{build.COMPILER} is not on PATH to build them")
    try:
        return ctypes.cdll.LoadLibrary(str(_build(cache_dir))), FROM_GXX, passed_over
    except (OSError, subprocess.SubprocessError) as e:
        detail = (getattr(e, "stderr", "") or str(e)).strip()[-500:]
        raise _NoLibrary(f"{before}building the int8 kernels with {build.COMPILER} failed: {detail}") from e


def _switched_off(isa: str) -> bool:
    return os.environ.get(SWITCHES[isa], "1") == "0"


def _choose(loaded: ctypes.CDLL) -> tuple[str, list[str]]:
    """The best ISA class this CPU, Linux and the switches allow; and why better ones were not."""
    features = _state["features"] = loaded.CodegemmaCpuFeatures()
    skipped = []
    vnni = bool(features & _AVX512_VNNI) and not _switched_off("avx512-vnni")
    if not features & _AMX_INT8:
        skipped.append("no AMX")
    elif _switched_off("amx") or not vnni:
        skipped.append("AMX switched off")
    elif loaded.CodegemmaAmxRequest() != 1:  # asks Linux for the tiles: only when about to use them
        skipped.append("Linux did not grant AMX")
    else:
        return "amx", skipped
    if vnni:
        return "avx512-vnni", skipped
    skipped.append("AVX-512 VNNI switched off" if features & _AVX512_VNNI else "no AVX-512 VNNI")
    if features & _AVX2_FMA and not _switched_off("avx2"):
        return "avx2", skipped
    skipped.append("AVX2 switched off" if features & _AVX2_FMA else "no AVX2 and FMA")
    return "xla", skipped


def enable_native(cache_dir: Path | None = None) -> bool:
    """Load (the wheel's library, else one g++ builds once) and register the CPU kernels of the
    best ISA class this CPU has (see the module's docstring); False, with
    `native_unavailable_reason()`, if none can run here. Safe to call from several threads and
    several times."""
    with _lock:
        if "ok" in _state:
            return bool(_state["ok"])
        _state["ok"], _state["why"], _state["isa"] = False, "", "xla"
        if os.environ.get("CODEGEMMA_NATIVE_KERNELS", "1") == "0":
            _state["why"] = "disabled by CODEGEMMA_NATIVE_KERNELS=0"
        elif jax.default_backend() != "cpu":
            _state["why"] = f"the default backend is {jax.default_backend()}, not cpu"
        elif platform.machine().lower() not in ("x86_64", "amd64"):
            _state["why"] = f"no native kernels for {platform.machine()} CPUs (int8 runs on XLA)"
        else:
            from ..checkpoints import default_cache_dir

            try:
                loaded, origin, passed_over = _open_library(Path(cache_dir) if cache_dir
                                                            else default_cache_dir() / "kernels")
                isa, skipped = _choose(loaded)
                _state["why"] = "; ".join(filter(None, (passed_over, *skipped)))
                _state["from"] = origin if isa != "xla" else FROM_NOWHERE  # loaded, but no kernel of it runs
                # The chosen kernels, and those of the lower classes this CPU has (for tests:
                # int8_matmul(..., isa=...)); AMX decodes with the AVX-512 VNNI kernel.
                lower = ISA_CLASSES[ISA_CLASSES.index(isa) + 1:-1]
                runnable = [c for c in (isa, *lower) if c != "xla" and c in cpu_isa_classes()]
                for c in runnable:
                    _register(loaded, *_KERNEL_SYMBOLS[c])
                if runnable:  # every class above "xla" has AVX2, FMA and F16C
                    _register(loaded, _ATTENTION_TARGET, "CodegemmaDecodeAttention")
                    _register(loaded, _ATTENTION_F16_TARGET, "CodegemmaDecodeAttentionF16")
                    _register(loaded, _ARGMAX_TARGET, "CodegemmaArgmax")
                    _register(loaded, _NIBBLE_MATMUL_TARGET, "CodegemmaNibbleMatmul")
                    _register(loaded, _NIBBLE_ARGMAX_TARGET, "CodegemmaNibbleArgmax")
                _state["runnable"] = (*runnable, "xla")
                _state["ok"], _state["isa"] = isa != "xla", isa
            except _NoLibrary as e:
                _state["why"] = str(e)
        return bool(_state["ok"])


_KERNEL_SYMBOLS = {"amx": (_AMX_TARGET, "CodegemmaAmxInt8Matmul"), "avx512-vnni": (_TARGET, "CodegemmaInt8Matmul"),
                   "avx2": (_AVX2_TARGET, "CodegemmaAvx2Int8Matmul")}


def _register(loaded: ctypes.CDLL, target: str, symbol: str) -> None:
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(loaded, symbol)), platform="cpu")


def native_enabled() -> bool:
    return bool(_state.get("ok"))


def isa_class() -> str:
    """The instruction-set class the kernels use: one of ISA_CLASSES ("xla" before enable_native)."""
    return str(_state.get("isa", "xla"))


def cpu_isa_classes() -> tuple[str, ...]:
    """The ISA classes this CPU has instructions for, switches aside (known once the kernels
    loaded; AMX may still be refused by Linux)."""
    features = int(_state.get("features", 0))
    needs = {"amx": _AMX_INT8 | _AVX512_VNNI, "avx512-vnni": _AVX512_VNNI, "avx2": _AVX2_FMA}
    return (*(isa for isa, bits in needs.items() if features & bits == bits), "xla")


def runnable_isa_classes() -> tuple[str, ...]:
    """The classes int8_matmul(..., isa=...) can run in this process: the chosen one and the
    lower ones this CPU has, down to "xla"."""
    return tuple(_state.get("runnable", ("xla",)))


def amx_enabled() -> bool:
    """Whether prompt chunks multiply with AMX tiles (see enable_native)."""
    return isa_class() == "amx"


def describe() -> str:
    """Which native kernels multiply int8 weights in this process ("xla": none, the fallback)."""
    return {"amx": "avx512-vnni + amx-int8", "avx512-vnni": "avx512-vnni", "avx2": "avx2-fma"}.get(isa_class(), "xla")


def kernels_from() -> str:
    """Where the loaded kernels' library came from: "wheel" (prebuilt, shipped in the package),
    "built with g++" (the developer's fallback) or "none" (not loaded: see native_unavailable_reason)."""
    return str(_state.get("from", FROM_NOWHERE))


def report(in_use: bool) -> dict[str, str]:
    """What `codegemma info` says of the kernels: the ISA class they run on, which they are, and where
    their library came from; `in_use` False (weights no kernel multiplies: not int8) reports none."""
    if not in_use:
        return {"isa": "xla", "kernels": "xla", "kernels_from": FROM_NOWHERE}
    return {"isa": isa_class(), "kernels": describe(), "kernels_from": kernels_from()}


def native_unavailable_reason() -> str:
    """Why no kernel (or no better kernel) runs here."""
    return str(_state.get("why", "not tried"))


def int8_matmul(x: jax.Array, w: jax.Array, scale: jax.Array, isa: str | None = None,
                layer: jax.Array | int | None = None) -> jax.Array:
    """x [..., K] · w [N, K] (int8) scaled by scale [N] -> [..., N] in x's dtype, on the kernels
    of `isa` (default: the class enable_native chose; others: runnable_isa_classes()).

    With `layer`, w [G, N, K] and scale [G, N] are a stack of matrices (a model whose layers run in
    a loop) and matrix `layer` is multiplied: the kernels read it where it lies in the stack."""
    *lead, k = x.shape
    n = w.shape[-2]
    rows = math.prod(lead)
    if (w.ndim == 3) != (layer is not None):
        raise ValueError(f"int8_matmul: a stacked w [G, N, K] needs a layer, a single w [N, K] none ({w.shape})")
    if isa is None:
        isa = isa_class()
    elif isa not in runnable_isa_classes():
        raise ValueError(f"int8_matmul: the {isa} kernels do not run in this process ({runnable_isa_classes()})")
    if isa == "amx" and rows >= AMX_MIN_ROWS and k % BLOCK == 0 and n % AMX_TILE == 0:
        target = _AMX_TARGET
    elif isa in ("amx", "avx512-vnni") and k % BLOCK == 0:
        target = _TARGET
    elif isa == "avx2" and k % BLOCK == 0:
        target = _AVX2_TARGET
    else:
        if layer is not None:
            w, scale = w[layer], scale[layer]
        return (jnp.einsum("...i,oi->...o", x, w.astype(x.dtype)) * scale.astype(x.dtype))
    index = jnp.asarray(0 if layer is None else layer, jnp.int32)
    y = jax.ffi.ffi_call(target, jax.ShapeDtypeStruct((rows, n), jnp.float32))(
        x.reshape(rows, k).astype(jnp.float32), w, scale.astype(jnp.float32), index)
    return y.reshape(*lead, n).astype(x.dtype)


def attention_rows(*, int8_weights: bool, dtype, cache_dtype, head_dim: int) -> int:
    """How many query rows per KV head a step may have for decode_attention to take it (0: none): the
    native kernels' model (int8 weights, the kernels loaded), float32 activations over a float32 or
    float16 cache, head_dim within the kernel's bound. The sampler sizes its steps' views by it, so it
    and decode_attention_fits agree."""
    fits = (int8_weights and native_enabled() and jnp.dtype(dtype) == jnp.float32
            and jnp.dtype(cache_dtype) in (jnp.float32, jnp.float16) and head_dim <= ATTENTION_MAX_DIM)
    return ATTENTION_MAX_ROWS if fits else 0


def decode_attention_fits(q: jax.Array, cache: jax.Array, *, positions: int, int8_weights: bool) -> bool:
    """Whether decode_attention takes this step: one sequence, at most attention_rows() query rows per
    KV head (a decode step, a draft check, the shortest prompt chunk). Longer prompt chunks, float and
    sharded models attend in XLA."""
    batch, heads, rows, dim = q.shape
    limit = attention_rows(int8_weights=int8_weights, dtype=q.dtype, cache_dtype=cache.dtype, head_dim=dim)
    return batch == 1 and cache.shape[-4] == 1 and rows <= limit and rows % positions == 0


def decode_attention(q: jax.Array, k: jax.Array, v: jax.Array, layer: jax.Array | None, start: jax.Array,
                     position: jax.Array, *, view: int, window: int | None, softcap: float | None,
                     positions: int = 1) -> jax.Array:
    """The attention of `positions` consecutive query positions from `position` on (a decode step: 1;
    a draft check: several), read where the keys and values lie in the cache (decode_attention.cc):
    q [1, K, T·G, H] (each position's query heads per KV head, position-major, scaled) over the cache
    positions [start, start + view) that each row's position sees (the last `window` of them for a
    sliding-window layer); k and v the cache [B, S, K, H] or a stack [L, B, S, K, H] with `layer`,
    float32 or float16. Returns [1, K, T·G, H] float32. Check decode_attention_fits first."""
    target = _ATTENTION_F16_TARGET if k.dtype == jnp.float16 else _ATTENTION_TARGET
    out = jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(q.shape[1:], jnp.float32))(
        q[0], k, v, jnp.asarray(0 if layer is None else layer, jnp.int32).reshape(()),
        jnp.asarray(start, jnp.int32).reshape(()), jnp.asarray(position, jnp.int32).reshape(()),
        view=np.int64(view), positions=np.int64(positions), window=np.int64(window or 0),
        softcap=np.float32(softcap or 0.0))
    return out[None]


def argmax(x: jax.Array) -> jax.Array:
    """jnp.argmax(x, axis=-1) as int32 (the first of equal largest values, the first NaN where there
    is one): on the native kernel (argmax.cc) for float32 where the kernels run, else in XLA."""
    if not native_enabled() or x.dtype != jnp.float32 or x.shape[-1] == 0:
        return jnp.argmax(x, axis=-1).astype(jnp.int32)
    *lead, n = x.shape
    out = jax.ffi.ffi_call(_ARGMAX_TARGET, jax.ShapeDtypeStruct((math.prod(lead),), jnp.int32))(x.reshape(-1, n))
    return out.reshape(lead)


def quantize_rows(w, chunk: int = 16384) -> tuple:
    """A float weight [N, K] -> (int8 [N, K], float32 scale [N]), symmetric per row (numpy).

    Works through `chunk` rows at a time, so quantizing a memory-mapped embedding of hundreds
    of MB never holds a second float copy of it."""
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


# The output head's two planes (nibble_planes.py) call the kernels above: imported last, so the names it
# takes from this module exist when it loads.
from .nibble_planes import (from_nibble_planes, nibble_argmax, nibble_head_runs, nibble_matmul,  # noqa: E402
                            to_nibble_planes)
