"""The sampler's pure steps under `jax.jit`: prefill a prompt chunk, decode one token, check drafts,
a full forward pass; how the next token is picked; and the static shapes they are compiled for.

The steps are module-level, with the model (a hashable Flax module) as a static argument, so samplers
of the same model share compiled programs. The cache argument is donated: XLA updates it in place.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from ..base import SamplingParams
from .model import Transformer

PREFILL_BUCKETS = (16, 32, 64, 128, 256, 512)
# Every cache view length is a separate compiled program, and each holds tens of MB; below
# 1 024 positions a shorter view saves almost nothing (decoding reads ~270 MB of weights and
# at most 6 MB of keys and values at this length), so the shortest view is 1 024.
MIN_KV_LEN = 1024


@dataclasses.dataclass(frozen=True)
class SamplerShape:
    """The parts of SamplingParams that change the compiled program."""

    greedy: bool
    top_k: int | None
    use_top_p: bool

    @classmethod
    def of(cls, params: SamplingParams) -> "SamplerShape":
        if params.greedy:
            return cls(True, None, False)
        return cls(False, params.top_k, params.top_p is not None and params.top_p < 1)


def sample_token(logits: jax.Array, key: jax.Array, temperature: jax.Array, top_p: jax.Array,
                 shape: SamplerShape) -> jax.Array:
    """logits [B, V] -> token ids [B]."""
    if shape.greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / temperature
    if shape.top_k is None and not shape.use_top_p:
        return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)
    if shape.top_k is not None:
        values, indices = lax.top_k(logits, min(shape.top_k, logits.shape[-1]))  # sorted, descending
    else:
        indices = jnp.argsort(-logits, axis=-1)
        values = jnp.take_along_axis(logits, indices, axis=-1)
    if shape.use_top_p:
        probs = jax.nn.softmax(values, axis=-1)
        # Keep the smallest prefix whose mass reaches top_p (the first candidate always stays).
        mass_before = jnp.cumsum(probs, axis=-1) - probs
        values = jnp.where(mass_before < top_p, values, -jnp.inf)
    choice = jax.random.categorical(key, values, axis=-1)
    return jnp.take_along_axis(indices, choice[:, None], axis=-1)[:, 0].astype(jnp.int32)


def bucket(n: int, buckets: Sequence[int]) -> int:
    for b in buckets:
        if n <= b:
            return b
    return buckets[-1]


def kv_bucket(n: int, cache_len: int) -> int:
    """The smallest power of two >= n (at least MIN_KV_LEN), capped at the cache length."""
    size = MIN_KV_LEN
    while size < n:
        size *= 2
    return min(size, cache_len)


@functools.partial(jax.jit, static_argnames=("model", "kv_len", "shape"), donate_argnames=("cache",))
def prefill_step(model: Transformer, params, tokens, cache, write_index, last_index, key, temperature, top_p,
                  *, kv_len: int, shape: SamplerShape):
    """tokens [B, T] at write_index -> (next token [B], its logits [B, V], cache)."""
    hidden, cache = model.apply({"params": params}, tokens, cache, write_index, kv_len)
    last = lax.dynamic_index_in_dim(hidden, last_index, axis=1, keepdims=False)  # [B, D]
    logits = model.apply({"params": params}, last, method=Transformer.logits)
    return sample_token(logits, key, temperature, top_p, shape), logits, cache


@functools.partial(jax.jit, static_argnames=("model", "kv_len", "shape"), donate_argnames=("cache",))
def decode_step(model: Transformer, params, token, cache, position, key, temperature, top_p,
                 *, kv_len: int, shape: SamplerShape):
    """token [B] at position -> (next token [B], its logits [B, V], cache)."""
    hidden, cache = model.apply({"params": params}, token[:, None], cache, position, kv_len)
    logits = model.apply({"params": params}, hidden[:, 0], method=Transformer.logits)
    return sample_token(logits, key, temperature, top_p, shape), logits, cache


@functools.partial(jax.jit, static_argnames=("model", "kv_len"), donate_argnames=("cache",))
def verify_step(model: Transformer, params, tokens, cache, write_index, *, kv_len: int):
    """tokens [B, T] at write_index -> (greedy choice after each of them [B, T], cache)."""
    hidden, cache = model.apply({"params": params}, tokens, cache, write_index, kv_len)
    logits = model.apply({"params": params}, hidden, method=Transformer.logits)
    return jnp.argmax(logits, axis=-1).astype(jnp.int32), cache


@functools.partial(jax.jit, static_argnums=(0,))
def full_forward(model: Transformer, params, tokens, cache):
    hidden, _ = model.apply({"params": params}, tokens, cache, jnp.int32(0), tokens.shape[1])
    return model.apply({"params": params}, hidden, method=Transformer.logits), None
