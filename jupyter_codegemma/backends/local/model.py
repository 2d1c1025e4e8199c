"""The Gemma transformer as Flax modules: embedder, RMSNorm, RoPE, attention, GeGLU, blocks.

Parameters follow the paper's parts: `embedder/input_embedding` [V, D], and per layer
`attn/qkv/w`, `attn/output/w`, `mlp/gate_up/w`, `mlp/down/w` (matrices stored [out, in], the
projections that share an input fused), the norms' `scale`. Each loader in `checkpoints/` (gguf.py, safetensors.py, orbax.py) converts
each checkpoint format into this tree. A quantized tree (quantize.py) holds int8 matrices, each
with a float32 `scale` per output row beside it (`input_embedding_scale` for the embedding).

Shapes are written with einsum letters:
  B batch, T query positions (this call), S cache positions, L attended cache positions,
  D embed_dim, N query heads, K key/value heads, G = N // K query heads per KV head,
  H head_dim, F hidden_dim of the feed-forward layer, V vocabulary.

Every call writes its keys and values into a fixed-size KV cache at `write_index` and attends
over a static-length view of it (`kv_len`), so one compiled function serves any position: a
full forward pass is a prefill into an empty cache, and decoding is a prefill of one token.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from . import native
from .config import AttentionKind, GemmaConfig

# A large finite negative rather than -inf, so fully-masked rows (padding) stay finite.
_MASKED = -2.3819763e38
# Up to this many query rows per KV head (T·G: a decode step's 4, a draft check's 32 for Gemma 3
# 270M), attention multiplies the keys as the left operand; prompt chunks keep the original form.
_FEW_QUERY_ROWS = 32

LayerCache = dict[str, jax.Array]  # {"k": [B, S, K, H], "v": [B, S, K, H]}
Cache = list[LayerCache]


def init_cache(config: GemmaConfig, batch_size: int, cache_len: int, dtype=jnp.float32) -> Cache:
    shape = (batch_size, cache_len, config.num_kv_heads, config.head_dim)
    return [{"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)} for _ in range(config.num_layers)]


class RMSNorm(nn.Module):
    """x / rms(x) * (1 + scale): Gemma stores the scale as an offset from one."""

    eps: float = 1e-6

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.zeros_init(), (x.shape[-1],))
        x32 = x.astype(jnp.float32)
        normed = x32 * lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
        return (normed * (1.0 + scale.astype(jnp.float32))).astype(x.dtype)


def apply_rope(x: jax.Array, positions: jax.Array, base: float, scale: float = 1.0) -> jax.Array:
    """Rotary position embedding on [B, T, N, H], rotating the two halves of each head."""
    half = x.shape[-1] // 2
    timescale = base ** (2.0 * jnp.arange(half, dtype=jnp.float32) / x.shape[-1])  # [H/2]
    angles = (positions.astype(jnp.float32) / scale)[:, None] / timescale[None, :]  # [T, H/2]
    sin = jnp.sin(angles)[None, :, None, :].astype(x.dtype)
    cos = jnp.cos(angles)[None, :, None, :].astype(x.dtype)
    first, second = x[..., :half], x[..., half:]
    return jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


class Embedder(nn.Module):
    vocab_size: int
    embed_dim: int

    def setup(self):
        self.input_embedding = self.param(
            "input_embedding", nn.initializers.normal(), (self.vocab_size, self.embed_dim))
        if self.input_embedding.dtype == jnp.int8:  # quantized (see quantize.py): one scale per row
            self.input_embedding_scale = self.param("input_embedding_scale", nn.initializers.ones_init(),
                                                    (self.vocab_size,))

    @property
    def quantized(self) -> bool:
        return self.input_embedding.dtype == jnp.int8

    def encode(self, tokens: jax.Array, dtype) -> jax.Array:
        x = jnp.take(self.input_embedding, tokens, axis=0).astype(dtype)  # [B, T, D]
        if self.quantized:
            x = x * jnp.take(self.input_embedding_scale, tokens, axis=0)[..., None].astype(dtype)
        # The scale is rounded to the activation dtype first, as the reference implementations do.
        return x * jnp.asarray(self.embed_dim**0.5, dtype)

    def decode(self, x: jax.Array) -> jax.Array:
        """The output head is tied to the embedding: [..., D] -> [..., V]."""
        if self.quantized:
            return native.int8_matmul(x, self.input_embedding, self.input_embedding_scale)
        return jnp.einsum("...D,VD->...V", x, self.input_embedding.astype(x.dtype))


class Linear(nn.Module):
    """A weight stored [out, in], as GGUF and Hugging Face store it.

    On CPU, a matrix-vector product with this layout streams each weight row once (decode
    is bound by reading the weights), and fusing projections that share an input (q, k, v;
    gate, up) into one matrix turns several small products into one large one.

    An int8 weight (see quantize.py) comes with `scale` [out]: the float weight is w * scale[:, None].
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.param("w", nn.initializers.normal(), (self.features, x.shape[-1]))
        if w.dtype == jnp.int8:
            return native.int8_matmul(x, w, self.param("scale", nn.initializers.ones_init(), (self.features,)))
        return jnp.einsum("...i,oi->...o", x, w.astype(x.dtype))


class Attention(nn.Module):
    config: GemmaConfig
    layer: int

    def setup(self):
        c = self.config
        self.qkv = Linear((c.num_heads + 2 * c.num_kv_heads) * c.head_dim)  # [N*H | K*H | K*H, D]
        self.output = Linear(c.embed_dim)  # [D, N*H]
        if c.use_qk_norm:
            self.query_norm = RMSNorm(c.norm_eps)
            self.key_norm = RMSNorm(c.norm_eps)

    def __call__(self, x: jax.Array, cache: LayerCache, write_index: jax.Array,
                 kv_len: int) -> tuple[jax.Array, LayerCache]:
        c = self.config
        batch, length, _ = x.shape
        qkv = self.qkv(x).reshape(batch, length, c.num_heads + 2 * c.num_kv_heads, c.head_dim)
        q = qkv[:, :, :c.num_heads]  # [B, T, N, H]
        k = qkv[:, :, c.num_heads:c.num_heads + c.num_kv_heads]  # [B, T, K, H]
        v = qkv[:, :, c.num_heads + c.num_kv_heads:]
        if c.use_qk_norm:
            q, k = self.query_norm(q), self.key_norm(k)

        positions = write_index + jnp.arange(length)  # [T]
        base, scale = c.rope_base(self.layer), c.rope_scale(self.layer)
        q = apply_rope(q, positions, base, scale) * jnp.asarray(c.query_scale, q.dtype)
        k = apply_rope(k, positions, base, scale)

        zero = jnp.zeros((), write_index.dtype)
        cache = {
            "k": lax.dynamic_update_slice(cache["k"], k.astype(cache["k"].dtype), (zero, write_index, zero, zero)),
            "v": lax.dynamic_update_slice(cache["v"], v.astype(cache["v"].dtype), (zero, write_index, zero, zero)),
        }

        # Attend over a static-length window of the cache. A global layer sees [0, kv_len); a
        # sliding layer only needs the `window` positions before this chunk, so it reads a
        # shorter slice that ends at the chunk's last position.
        cache_len = cache["k"].shape[1]
        local = c.attention_kinds[self.layer] == AttentionKind.LOCAL
        view = min(kv_len, length + c.sliding_window) if local else kv_len
        start = jnp.clip(write_index + length - view, 0, cache_len - view) if local else zero
        keys = lax.dynamic_slice_in_dim(cache["k"], start, view, axis=1).astype(x.dtype)  # [B, L, K, H]
        values = lax.dynamic_slice_in_dim(cache["v"], start, view, axis=1).astype(x.dtype)
        key_positions = start + jnp.arange(view)  # [L]

        # Per KV head, its G query heads at all T positions form one [T·G, H] matrix, so each of
        # the two products is a single large matrix product per KV head (for Gemma 3 270M, one
        # [2048, 256] x [256, L] product per layer). The same math with the heads as a separate
        # batch axis ("BTKGH,BLKH->BKGTL") ran twice as slow on XLA's CPU backend for prompt
        # chunks (measured: 20.5 against 9.6 ms for 512 queries over 1 024 keys), because the
        # products were small and their operands transposed.
        groups = c.num_heads // c.num_kv_heads
        q = q.reshape(batch, length, c.num_kv_heads, groups, c.head_dim).transpose(0, 2, 1, 3, 4)
        q = q.reshape(batch, c.num_kv_heads, length * groups, c.head_dim)  # [B, K, T·G, H]
        if length * groups <= _FEW_QUERY_ROWS:
            # Decoding and draft checks: the keys are the large operand, and XLA's CPU backend
            # multiplies them as the left operand [L, H] without first copying them into [H, L]
            # (that copy cost 0.23 ms per layer and step over 513 keys, a tenth of a decode step).
            logits = jnp.einsum("BLKH,BKMH->BKLM", keys, q).swapaxes(-1, -2).astype(jnp.float32)
        else:
            logits = jnp.einsum("BKMH,BLKH->BKML", q, keys).astype(jnp.float32)
        logits = logits.reshape(batch, c.num_kv_heads, length, groups, view)  # [B, K, T, G, L]
        if c.attn_logit_softcap is not None:
            logits = jnp.tanh(logits / c.attn_logit_softcap) * c.attn_logit_softcap
        visible = key_positions[None, :] <= positions[:, None]  # [T, L]
        if local:
            visible &= key_positions[None, :] > positions[:, None] - c.sliding_window
        logits = jnp.where(visible[:, None, :], logits, _MASKED)
        probs = jax.nn.softmax(logits, axis=-1).astype(x.dtype)
        probs = probs.reshape(batch, c.num_kv_heads, length * groups, view)
        encoded = jnp.einsum("BKML,BLKH->BKMH", probs, values)  # [B, K, T·G, H]
        encoded = encoded.reshape(batch, c.num_kv_heads, length, groups, c.head_dim).transpose(0, 2, 1, 3, 4)
        return self.output(encoded.reshape(batch, length, c.num_heads * c.head_dim)), cache


class FeedForward(nn.Module):
    """GeGLU: gelu(x W_gate) * (x W_up), projected back to D."""

    hidden_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        gate, up = jnp.split(Linear(2 * self.hidden_dim, name="gate_up")(x), 2, axis=-1)
        # Gemma uses the tanh approximation of GELU.
        return Linear(x.shape[-1], name="down")(jax.nn.gelu(gate, approximate=True) * up)


class Block(nn.Module):
    config: GemmaConfig
    layer: int

    def setup(self):
        c = self.config
        self.pre_attention_norm = RMSNorm(c.norm_eps)
        self.attn = Attention(c, self.layer)
        if c.use_post_attn_norm:
            self.post_attention_norm = RMSNorm(c.norm_eps)
        self.pre_ffw_norm = RMSNorm(c.norm_eps)
        self.mlp = FeedForward(c.hidden_dim)
        if c.use_post_ffw_norm:
            self.post_ffw_norm = RMSNorm(c.norm_eps)

    def __call__(self, x, cache, write_index, kv_len):
        attn, cache = self.attn(self.pre_attention_norm(x), cache, write_index, kv_len)
        if self.config.use_post_attn_norm:
            attn = self.post_attention_norm(attn)
        x = x + attn
        ffw = self.mlp(self.pre_ffw_norm(x))
        if self.config.use_post_ffw_norm:
            ffw = self.post_ffw_norm(ffw)
        return x + ffw, cache


class Transformer(nn.Module):
    """Tokens -> final hidden states (`__call__`); hidden states -> logits (`logits`).

    The two are separate so callers compute the [*, V] logits only at the positions they
    sample from: for a 2 000-token prompt that is one row instead of 2 000.
    """

    config: GemmaConfig
    dtype: Any = jnp.float32  # activation dtype

    def setup(self):
        c = self.config
        self.embedder = Embedder(c.vocab_size, c.embed_dim)
        # Layers are separate modules with separate arrays (not stacked under lax.scan): on CPU
        # that decodes faster, because XLA neither copies weight slices nor loops.
        self.layers = [Block(c, i, name=f"layer_{i}") for i in range(c.num_layers)]
        self.final_norm = RMSNorm(c.norm_eps)

    def __call__(self, tokens: jax.Array, cache: Cache, write_index: jax.Array,
                 kv_len: int) -> tuple[jax.Array, Cache]:
        """tokens [B, T] at positions write_index + [0, T) -> hidden [B, T, D], updated cache."""
        x = self.embedder.encode(tokens, self.dtype)
        new_cache = []
        for layer, layer_cache in zip(self.layers, cache):
            x, layer_cache = layer(x, layer_cache, write_index, kv_len)
            new_cache.append(layer_cache)
        return self.final_norm(x), new_cache

    def logits(self, hidden: jax.Array) -> jax.Array:
        logits = self.embedder.decode(hidden).astype(jnp.float32)
        cap = self.config.final_logit_softcap
        return jnp.tanh(logits / cap) * cap if cap is not None else logits


def init_params(config: GemmaConfig, seed: int = 0, scale: float = 0.2) -> dict:
    """Random parameters with the checkpoint's tree (for tests and tiny checkpoints)."""
    model = Transformer(config)
    cache = init_cache(config, 1, 8)
    params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, 1), jnp.int32), cache,
                        jnp.zeros((), jnp.int32), 8)["params"]
    # Non-zero norm scales, so tests notice a missing or doubled "+1".
    keys = iter(jax.random.split(jax.random.PRNGKey(seed + 1), 4096))
    return jax.tree.map(lambda p: jax.random.normal(next(keys), p.shape, p.dtype) * scale, params)
