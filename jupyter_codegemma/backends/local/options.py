"""How to load and run a local model (not what to generate): dtype, cache, devices, warm-up."""

from __future__ import annotations

import dataclasses

from ..errors import SettingsError
from .dtypes import CACHE_DTYPES, PREFILL_DTYPES, WEIGHT_DTYPES

DEFAULT_CACHE_LEN = 4096


@dataclasses.dataclass(frozen=True)
class EngineOptions:
    """How to load and run a model (not what to generate)."""

    # Decode weights. "auto": bfloat16 on TPU and GPU; on CPU int8 (weight-only, one scale per
    # row, multiplied by backends/local/native's kernel for the CPU's class: AMX, AVX-512 VNNI or
    # AVX2) where the kernels build, else float32 (XLA's CPU matrix-vector products are
    # several times slower in bfloat16 or int8).
    dtype: str = "auto"
    # Prefill weights when `dtype` is int8. "auto" on CPU: the int8 weights wherever a native
    # kernel multiplies them (prompt chunks then round activations as decoding does), else
    # float32; elsewhere the decode dtype. A float prefill dtype keeps a second copy of the
    # weights (400 MB in float32 for 270M).
    prefill_dtype: str = "auto"
    cache_len: int = DEFAULT_CACHE_LEN  # KV cache positions: the longest prompt + completion
    # The KV cache's dtype. "auto": float16 for int8 weights on the native CPU kernels (their attention
    # reads it where it lies: half the memory), else the activations' dtype (float32 on CPU, bfloat16
    # on accelerators). See dtypes.resolve_cache_dtype.
    cache_dtype: str = "auto"
    cache_dir: str | None = None  # converted weights and compiled programs; default ~/.cache/jupyter-codegemma
    compilation_cache: bool = True
    # How many devices to spread the model over (a "model" mesh axis, see backends/local/sharding.py).
    # None: every device present (one device: no mesh); 1: no sharding; N: the first N devices.
    devices: int | None = None
    # Greedy decoding checks prompt-lookup guesses several at a time (backends/local/speculative.py):
    # the same ids (up to float summation order: both int8 kernels round activations alike); faster
    # where the text repeats itself, which code in a notebook does: on the typing session of
    # bench/latency.py it cut the time after the first token by ~15 %, so it is on by default.
    speculative: bool = True
    # With int8 weights on the native kernels (prompt chunks too), run the layers as a loop over
    # their repeating groups (model.py's layer_period) instead of unrolled: every compiled program
    # holds one group's code, so it compiles and loads faster and holds less memory. Off: unrolled.
    layer_loop: bool = True
    # After Engine.load, compile the programs of every prompt-length bucket in a background
    # thread (most urgent first; from the persistent compilation cache when it has them), so
    # that requests do not wait for tracing and compiling. See Sampler.precompile.
    warm_up: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in WEIGHT_DTYPES:
            raise SettingsError(f"dtype must be one of {', '.join(WEIGHT_DTYPES)}, got {self.dtype!r}")
        if self.prefill_dtype not in PREFILL_DTYPES:
            raise SettingsError(f"prefill_dtype must be one of {', '.join(PREFILL_DTYPES)}, "
                                f"got {self.prefill_dtype!r}")
        if self.cache_dtype not in CACHE_DTYPES:
            raise SettingsError(f"cache_dtype must be one of {', '.join(CACHE_DTYPES)}, got {self.cache_dtype!r}")
        if self.cache_len < 64:
            raise SettingsError(f"cache_len must be at least 64, got {self.cache_len}")
        if self.devices is not None and self.devices < 1:
            raise SettingsError(f"devices must be at least 1, got {self.devices}")
