"""The sampler's pure steps under `jax.jit`: prefill a prompt chunk, decode one token, check drafts,
a full forward pass; how the next token is picked; the static shapes they are compiled for; and, on the
host, a step's window of recent ids and the reading back of the token it picked.

The steps are module-level, with the model (a hashable Flax module, or the engine's TransformerSpec that builds
one when a step is traced) as a static argument, so samplers of the same model share compiled programs.
The cache argument is donated: XLA updates it in place.

The repetition penalty's arguments (the recent ids, the penalty) are passed only when it is on
(`SamplerShape.penalty_window` > 0): without it every step is traced exactly as it was before the
penalty existed, so its compiled programs, and their entries in the compilation caches, are unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..base import SamplingParams
from . import native

if TYPE_CHECKING:
    from .model_spec import Model

# A keystroke adds a word or two to a cached prompt: 1-3 tokens, padded to 4 positions. Every position
# of a chunk goes through every weight matrix, so padding them to 16 cost a 3-token extension ~100 ms
# on a 2-core AVX2 machine; padded to 4, ~46 ms.
PREFILL_BUCKETS = (4, 16, 32, 64, 128, 256, 512)
# An empty slot of a recent-ids window (a prompt shorter than the window): out of every vocabulary's
# range, so the penalty's scatter drops it.
NO_ID = 2**31 - 1
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
    # How many recent ids the repetition penalty looks at (the window's length); 0: no penalty.
    penalty_window: int = 0
    # Whether a decode step returns its logits (someone reads them: `Sampler.generate(on_logits=...)`).
    # A greedy step without the penalty that returns none never forms them: its token comes from
    # Model.greedy, which for an int8 head in planes reads half of it.
    logits: bool = False

    @property
    def head_greedy(self) -> bool:
        """Whether a decode step picks its token with Model.greedy and returns no logits."""
        return self.greedy and not self.penalty_window and not self.logits

    @classmethod
    def of(cls, params: SamplingParams) -> "SamplerShape":
        window = params.repetition_window if params.penalised else 0
        if params.greedy:
            return cls(True, None, False, window)
        return cls(False, params.top_k, params.top_p is not None and params.top_p < 1, window)


def penalise(logits: jax.Array, recent: jax.Array, penalty: jax.Array) -> jax.Array:
    """llama.cpp's repetition penalty: logits [N, V] with each id in `recent` [N, W] made less likely
    (a positive logit divided by `penalty`, a negative one multiplied), once however often it occurs.
    Slots holding NO_ID are empty."""
    rows = jnp.arange(logits.shape[0])[:, None]
    seen = jnp.zeros(logits.shape, jnp.bool_).at[rows, recent].set(True, mode="drop")
    penalised = jnp.where(logits > 0, logits / penalty, logits * penalty)
    return jnp.where(seen, penalised.astype(logits.dtype), logits)


def sample_token(logits: jax.Array, key: jax.Array, temperature: jax.Array, top_p: jax.Array,
                 shape: SamplerShape, recent: jax.Array | None = None,
                 penalty: jax.Array | None = None) -> jax.Array:
    """logits [B, V] -> token ids [B]. With a penalty window, `recent` [B, W] holds the last W ids
    of the context (the token fed last included), penalised by `penalty` before picking."""
    if shape.penalty_window:
        logits = penalise(logits, recent, penalty)
    if shape.greedy:
        return native.argmax(logits)
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


def recent_window(ids: Sequence[int], size: int) -> np.ndarray:
    """The last `size` of `ids`, right-aligned in a [size] int32 array (NO_ID in the empty slots):
    what the repetition penalty looks at."""
    window = np.full(size, NO_ID, np.int32)
    tail = list(ids[-size:]) if size else []
    if tail:
        window[size - len(tail):] = tail
    return window


def read_id(token: jax.Array) -> int:
    """The id in a [1] device array, copied to the host as it is (`token[0]` would first dispatch an
    indexing computation, ~0.7 ms of the host's cores per token)."""
    return int(np.asarray(token)[0])


@functools.partial(jax.jit, static_argnames=("model", "kv_len", "shape"), donate_argnames=("cache",))
def prefill_step(model: Model, params, tokens, cache, write_index, last_index, key, temperature, top_p,
                  recent=None, penalty=None, *, kv_len: int, shape: SamplerShape):
    """tokens [B, T] at write_index -> (next token [B], its logits [B, V], cache). With a penalty
    window, `recent` [B, W] holds the last W ids up to the chunk's last real token."""
    hidden, cache = model.apply({"params": params}, tokens, cache, write_index, kv_len)
    last = lax.dynamic_index_in_dim(hidden, last_index, axis=1, keepdims=False)  # [B, D]
    logits = model.apply({"params": params}, last, method="logits")
    return sample_token(logits, key, temperature, top_p, shape, recent, penalty), logits, cache


@functools.partial(jax.jit, static_argnames=("model", "kv_len", "shape"), donate_argnames=("cache",))
def decode_step(model: Model, params, token, cache, position, key, temperature, top_p,
                 recent=None, penalty=None, *, kv_len: int, shape: SamplerShape):
    """token [B] at position -> (next token [B], its logits [B, V] (None for `shape.head_greedy`), cache).

    With a penalty window, `recent` [B, W] holds the last W ids before `token`; the step adds
    `token` to it on the device and returns the window too, (next, logits, cache, window): the
    next step can be dispatched before `token` is read back."""
    hidden, cache = model.apply({"params": params}, token[:, None], cache, position, kv_len)
    if shape.head_greedy:
        return model.apply({"params": params}, hidden[:, 0], method="greedy"), None, cache
    logits = model.apply({"params": params}, hidden[:, 0], method="logits")
    if not shape.penalty_window:
        return sample_token(logits, key, temperature, top_p, shape), logits, cache
    recent = jnp.concatenate([recent[:, 1:], token[:, None].astype(recent.dtype)], axis=1)
    return sample_token(logits, key, temperature, top_p, shape, recent, penalty), logits, cache, recent


@functools.partial(jax.jit, static_argnames=("model", "kv_len", "shape"), donate_argnames=("cache",))
def verify_step(model: Model, params, tokens, cache, write_index, windows=None, penalty=None,
                *, kv_len: int, shape: SamplerShape | None = None):
    """tokens [B, T] at write_index -> (greedy choice after each of them [B, T], cache).

    With a penalised greedy `shape`, `windows` [B, T, W] holds, for each position, the last W ids up
    to the token fed there, and each choice is the penalised argmax (as decode_step picks it)."""
    hidden, cache = model.apply({"params": params}, tokens, cache, write_index, kv_len)
    if shape is None or not shape.penalty_window:
        return model.apply({"params": params}, hidden, method="greedy"), cache
    logits = model.apply({"params": params}, hidden, method="logits")
    b, t, v = logits.shape
    flat = penalise(logits.reshape(b * t, v), windows.reshape(b * t, -1), penalty)
    return native.argmax(flat).reshape(b, t), cache


@functools.partial(jax.jit, static_argnums=(0,))
def full_forward(model: Model, params, tokens, cache):
    hidden, _ = model.apply({"params": params}, tokens, cache, jnp.int32(0), tokens.shape[1])
    return model.apply({"params": params}, hidden, method="logits"), None
