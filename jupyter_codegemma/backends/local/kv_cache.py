"""The KV cache's layout: one {"k", "v"} per layer [B, S, K, H], or, for a layer loop, one per run
of the period, stacked over the run's layers of every group [G·run, B, S, K, H]; and writing and
reading positions of one layer in it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .config import GemmaConfig
from .layer_stacks import layer_runs


LayerCache = dict[str, jax.Array]  # {"k": [B, S, K, H], "v": [B, S, K, H]}, stacked: [G, B, S, K, H]
Cache = list[LayerCache]  # one per layer; with a layer period p, one per position in the period


def init_cache(config: GemmaConfig, batch_size: int, cache_len: int, dtype=jnp.float32, period: int = 0) -> Cache:
    """An empty KV cache for a model with this `layer_period` (0: unrolled layers): one per layer,
    or one per run of the period (see layer_runs), stacked over the run's layers of every group."""
    shape = (batch_size, cache_len, config.num_kv_heads, config.head_dim)
    stacks = [(config.num_layers // period) * length for _, length in layer_runs(config, period)] if period else []
    leads = [(n,) for n in stacks] if period else [()] * config.num_layers
    if jax.default_backend() == "cpu":
        # Host zeros, copied in: no program to lower and fetch from the compilation cache (the cache of
        # Gemma 3 270M in 0.03 s instead of 0.06 s of a kernel's start; np.zeros' pages are the system's
        # zeroed ones, never written).
        return [{"k": jax.device_put(np.zeros((*lead, *shape), dtype)),
                 "v": jax.device_put(np.zeros((*lead, *shape), dtype))} for lead in leads]
    # One program for the whole cache: each jnp.zeros outside a jit compiles a program of its own, and
    # host zeros would cross to the accelerator.
    return jax.jit(lambda: [{"k": jnp.zeros((*lead, *shape), dtype), "v": jnp.zeros((*lead, *shape), dtype)}
                            for lead in leads])()


def write_cache(buffer: jax.Array, new: jax.Array, write_index: jax.Array, group: jax.Array | None) -> jax.Array:
    """new [B, T, K, H] into the cache buffer at write_index (of layer `group` in a stacked one)."""
    zero = jnp.zeros((), write_index.dtype)
    new = new.astype(buffer.dtype)
    if group is None:
        return lax.dynamic_update_slice(buffer, new, (zero, write_index, zero, zero))
    return lax.dynamic_update_slice(buffer, new[None], (group.astype(write_index.dtype), zero, write_index, zero, zero))


def read_cache(buffer: jax.Array, start: jax.Array, length: int, group: jax.Array | None) -> jax.Array:
    """The cache's positions [start, start + length): [B, L, K, H]."""
    if group is None:
        return lax.dynamic_slice_in_dim(buffer, start, length, axis=1)
    zero = jnp.zeros((), start.dtype)
    _, batch, _, heads, dim = buffer.shape
    return lax.dynamic_slice(buffer, (group.astype(start.dtype), zero, start, zero, zero),
                             (1, batch, length, heads, dim))[0]
