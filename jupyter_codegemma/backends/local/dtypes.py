"""Which weight dtypes an engine runs: the names, and what "auto" means on each platform."""

from __future__ import annotations

WEIGHT_DTYPES = ("auto", "float32", "bfloat16", "int8")
PREFILL_DTYPES = ("auto", "float32", "bfloat16", "int8")
CACHE_DTYPES = ("auto", "float32", "float16", "bfloat16")


def resolve_dtype(dtype: str, platform: str | None = None, native_int8: bool | None = None) -> str:
    """"auto" -> "bfloat16" on TPU/GPU; on CPU "int8" where the native kernel runs, else
    "float32". Explicit names pass through."""
    if dtype != "auto":
        return dtype
    if platform is None:
        import jax

        platform = jax.devices()[0].platform
    if platform != "cpu":
        return "bfloat16"
    if native_int8 is None:
        from . import native

        native_int8 = native.enable_native()
    return "int8" if native_int8 else "float32"


def resolve_prefill_dtype(prefill_dtype: str, dtype: str, platform: str, native_int8: bool = False) -> str:
    """The weights prompt chunks run on, which differ from the decode weights only with int8.
    "auto" with int8 on CPU: the int8 weights themselves wherever a native kernel multiplies
    them (AMX, AVX-512 VNNI or AVX2: no second copy of the weights in memory, and prompt
    chunks, draft checks and decoding round the activations alike), else float32 (XLA's
    int8 matmuls are slow)."""
    if prefill_dtype != "auto":
        return prefill_dtype if dtype == "int8" else dtype
    if dtype == "int8" and platform == "cpu":
        return "int8" if native_int8 else "float32"
    return dtype


def resolve_cache_dtype(cache_dtype: str, dtype: str, prefill_dtype: str, platform: str,
                        native_attention: bool = False) -> str:
    """The KV cache's dtype. "auto": float16 for the int8 model on the CPU kernels (prompts on the
    int8 weights too), whose attention kernel reads float16 where it lies (as llama.cpp keeps its
    cache: half the memory, 72 MB less for Gemma 3 270M's 4 096 positions); else the activations'
    dtype (float32 on CPU, where XLA widens a float16 cache slowly in every step; bfloat16 on
    accelerators). Explicit names pass through."""
    if cache_dtype != "auto":
        return cache_dtype
    if dtype != "int8":
        return dtype  # float weights: the cache in the activations' dtype
    if platform != "cpu":
        return "bfloat16"
    return "float16" if prefill_dtype == "int8" and native_attention else "float32"
