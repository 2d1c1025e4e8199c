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

The layers run one after the other in the program (unrolled), or, with `layer_period` p, in a loop
over groups of p layers (`stack_layers`): the layer pattern repeats every p layers (Gemma 3: five
sliding-window layers, then a global one), so one group's code serves every group, and within a
group each run of one attention kind is an inner loop over its layers (`layer_runs`). Each compiled
program then holds one layer's code per run (Gemma 3: two) instead of every layer's, and on XLA's
CPU backend a loaded program's resident memory grows with its code (measured for Gemma 3 270M:
22-60 MB per unrolled program, 13 of them after the warm-up). The loops pass each int8 matrix to
the kernels as the whole stack and the layer's index (native.int8_matmul), so no weight is copied
out of a stack.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from . import native
from .attention import attend
from .config import AttentionKind, GemmaConfig
from .kv_cache import Cache, LayerCache, init_cache, read_cache, write_cache  # noqa: F401
from .layer_stacks import LayerStack, layer_period, layer_runs, repeats_every, stack_layers  # noqa: F401


def _of_layer(param: jax.Array, group: jax.Array | None) -> jax.Array:
    """A parameter of this layer: itself, or its row of a stack."""
    return param if group is None else param[group]


class RMSNorm(nn.Module):
    """x / rms(x) * (1 + scale): Gemma stores the scale as an offset from one."""

    eps: float = 1e-6
    stacked: int = 0  # > 0: the scale of each of this many layers, [G, D]

    @nn.compact
    def __call__(self, x: jax.Array, group: jax.Array | None = None) -> jax.Array:
        shape = (self.stacked, x.shape[-1]) if self.stacked else (x.shape[-1],)
        scale = _of_layer(self.param("scale", nn.initializers.zeros_init(), shape), group)
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
        if self.has_variable("params", "input_embedding"):
            # As given: int8 rows may come as two planes of 4-bit halves, [2, V, D/2] (quantize.py).
            self.input_embedding = self.get_variable("params", "input_embedding")
        else:
            self.input_embedding = self.param(
                "input_embedding", nn.initializers.normal(), (self.vocab_size, self.embed_dim))
        if self.input_embedding.dtype == jnp.int8:  # quantized (see quantize.py): one scale per row
            self.input_embedding_scale = self.param("input_embedding_scale", nn.initializers.ones_init(),
                                                    (self.vocab_size,))

    @property
    def quantized(self) -> bool:
        return self.input_embedding.dtype == jnp.int8

    @property
    def in_planes(self) -> bool:
        """int8 rows held as two planes of 4-bit halves [2, V, D/2] (quantize.py, native.to_nibble_planes)."""
        return self.quantized and self.input_embedding.ndim == 3

    def encode(self, tokens: jax.Array, dtype) -> jax.Array:
        if self.in_planes:
            x = native.from_nibble_planes(jnp.take(self.input_embedding, tokens, axis=1)).astype(dtype)  # [B, T, D]
        else:
            x = jnp.take(self.input_embedding, tokens, axis=0).astype(dtype)  # [B, T, D]
        if self.quantized:
            x = x * jnp.take(self.input_embedding_scale, tokens, axis=0)[..., None].astype(dtype)
        # The scale is rounded to the activation dtype first, as the reference implementations do.
        return x * jnp.asarray(self.embed_dim**0.5, dtype)

    def decode(self, x: jax.Array) -> jax.Array:
        """The output head is tied to the embedding: [..., D] -> [..., V]."""
        if self.in_planes:
            return native.nibble_matmul(x, self.input_embedding, self.input_embedding_scale)
        if self.quantized:
            return native.int8_matmul(x, self.input_embedding, self.input_embedding_scale)
        return jnp.einsum("...D,VD->...V", x, self.input_embedding.astype(x.dtype))

    def greedy(self, x: jax.Array) -> jax.Array:
        """argmax(decode(x)) as int32 [...]: for planes, from the high plane with the likeliest
        candidates checked exactly (native.nibble_argmax), reading half the head."""
        if self.in_planes:
            return native.nibble_argmax(x, self.input_embedding, self.input_embedding_scale)
        return native.argmax(self.decode(x).astype(jnp.float32))


class Linear(nn.Module):
    """A weight stored [out, in], as GGUF and Hugging Face store it.

    On CPU, a matrix-vector product with this layout streams each weight row once (decode
    is bound by reading the weights), and fusing projections that share an input (q, k, v;
    gate, up) into one matrix turns several small products into one large one.

    An int8 weight (see quantize.py) comes with `scale` [out]: the float weight is w * scale[:, None].
    Stacked (a layer loop), w is [G, out, in] and scale [G, out], and `group` picks the layer.
    """

    features: int
    stacked: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, group: jax.Array | None = None) -> jax.Array:
        lead = (self.stacked,) if self.stacked else ()
        w = self.param("w", nn.initializers.normal(), (*lead, self.features, x.shape[-1]))
        if w.dtype == jnp.int8:
            scale = self.param("scale", nn.initializers.ones_init(), (*lead, self.features))
            return native.int8_matmul(x, w, scale, layer=group)
        return jnp.einsum("...i,oi->...o", x, _of_layer(w, group).astype(x.dtype))


class Attention(nn.Module):
    config: GemmaConfig
    layer: int  # with `stacked`, its position in the layer period (which decides its kind)
    stacked: int = 0

    def setup(self):
        c = self.config
        self.qkv = Linear((c.num_heads + 2 * c.num_kv_heads) * c.head_dim, self.stacked)  # [N*H | K*H | K*H, D]
        self.output = Linear(c.embed_dim, self.stacked)  # [D, N*H]
        if c.use_qk_norm:
            self.query_norm = RMSNorm(c.norm_eps, self.stacked)
            self.key_norm = RMSNorm(c.norm_eps, self.stacked)

    def __call__(self, x: jax.Array, cache: LayerCache, write_index: jax.Array,
                 kv_len: int, group: jax.Array | None = None) -> tuple[jax.Array, LayerCache]:
        c = self.config
        batch, length, _ = x.shape
        qkv = self.qkv(x, group).reshape(batch, length, c.num_heads + 2 * c.num_kv_heads, c.head_dim)
        q = qkv[:, :, :c.num_heads]  # [B, T, N, H]
        k = qkv[:, :, c.num_heads:c.num_heads + c.num_kv_heads]  # [B, T, K, H]
        v = qkv[:, :, c.num_heads + c.num_kv_heads:]
        if c.use_qk_norm:
            q, k = self.query_norm(q, group), self.key_norm(k, group)

        positions = write_index + jnp.arange(length)  # [T]
        base, scale = c.rope_base(self.layer), c.rope_scale(self.layer)
        q = apply_rope(q, positions, base, scale) * jnp.asarray(c.query_scale, q.dtype)
        k = apply_rope(k, positions, base, scale)

        zero = jnp.zeros((), write_index.dtype)
        cache = {"k": write_cache(cache["k"], k, write_index, group),
                 "v": write_cache(cache["v"], v, write_index, group)}

        # Attend over a static-length window of the cache. A global layer sees [0, kv_len); a
        # sliding layer only needs the `window` positions before this chunk, so it reads a
        # shorter slice that ends at the chunk's last position.
        cache_len = cache["k"].shape[-3]
        local = c.attention_kinds[self.layer] == AttentionKind.LOCAL
        view = min(kv_len, length + c.sliding_window) if local else kv_len
        start = jnp.clip(write_index + length - view, 0, cache_len - view) if local else zero

        # Per KV head, its G query heads at all T positions form one [T·G, H] matrix (see attention.py).
        groups = c.num_heads // c.num_kv_heads
        q = q.reshape(batch, length, c.num_kv_heads, groups, c.head_dim).transpose(0, 2, 1, 3, 4)
        q = q.reshape(batch, c.num_kv_heads, length * groups, c.head_dim)  # [B, K, T·G, H]
        int8 = self.qkv.variables["params"]["w"].dtype == jnp.int8  # the native kernels' model (quantize.py)
        if native.decode_attention_fits(q, cache["k"], positions=length, int8_weights=int8):
            # A decode step or a draft check: the native kernel reads the view where it lies in the cache.
            encoded = native.decode_attention(q, cache["k"], cache["v"], group, start, positions[0], view=view,
                                              window=c.sliding_window if local else None,
                                              softcap=c.attn_logit_softcap, positions=length)
        else:
            keys = read_cache(cache["k"], start, view, group).astype(x.dtype)  # [B, L, K, H]
            values = read_cache(cache["v"], start, view, group).astype(x.dtype)
            key_positions = start + jnp.arange(view)  # [L]
            encoded = attend(c, local, q, keys, values, positions, key_positions)  # [B, K, T·G, H]
        encoded = encoded.reshape(batch, c.num_kv_heads, length, groups, c.head_dim).transpose(0, 2, 1, 3, 4)
        return self.output(encoded.reshape(batch, length, c.num_heads * c.head_dim), group), cache


class FeedForward(nn.Module):
    """GeGLU: gelu(x W_gate) * (x W_up), projected back to D."""

    hidden_dim: int
    stacked: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, group: jax.Array | None = None) -> jax.Array:
        gate, up = jnp.split(Linear(2 * self.hidden_dim, self.stacked, name="gate_up")(x, group), 2, axis=-1)
        # Gemma uses the tanh approximation of GELU.
        return Linear(x.shape[-1], self.stacked, name="down")(jax.nn.gelu(gate, approximate=True) * up, group)


class Block(nn.Module):
    config: GemmaConfig
    layer: int  # with `stacked`, its position in the layer period
    stacked: int = 0  # > 0: this many layers' parameters, stacked; each call runs layer `group`

    def setup(self):
        c, g = self.config, self.stacked
        self.pre_attention_norm = RMSNorm(c.norm_eps, g)
        self.attn = Attention(c, self.layer, g)
        if c.use_post_attn_norm:
            self.post_attention_norm = RMSNorm(c.norm_eps, g)
        self.pre_ffw_norm = RMSNorm(c.norm_eps, g)
        self.mlp = FeedForward(c.hidden_dim, g)
        if c.use_post_ffw_norm:
            self.post_ffw_norm = RMSNorm(c.norm_eps, g)

    def __call__(self, x, cache, write_index, kv_len, group=None):
        attn, cache = self.attn(self.pre_attention_norm(x, group), cache, write_index, kv_len, group)
        if self.config.use_post_attn_norm:
            attn = self.post_attention_norm(attn, group)
        x = x + attn
        ffw = self.mlp(self.pre_ffw_norm(x, group), group)
        if self.config.use_post_ffw_norm:
            ffw = self.post_ffw_norm(ffw, group)
        return x + ffw, cache


class RunStep(nn.Module):
    """One layer of a run (layer_runs), the body of the run's loop: layer `step` of group `group`."""

    config: GemmaConfig
    first: int  # the run's first position in the period: its layers' attention kind
    stacked: int  # the run's layers over all groups
    length: int  # the run's layers in one group

    def setup(self):
        self.block = Block(self.config, self.first, self.stacked)

    def __call__(self, carry, step, group, write_index, kv_len):
        x, cache = carry
        x, cache = self.block(x, cache, write_index, kv_len, group * self.length + step)
        return (x, cache), None


class LayerGroup(nn.Module):
    """One period of layers, the body of the layer loop: layers g·p .. g·p + p - 1 for group g, each run
    of one attention kind as an inner loop over its layers. The program holds one layer's code per run
    (Gemma 3: two, a sliding-window layer and a global one), not one per layer."""

    config: GemmaConfig
    period: int

    def setup(self):
        groups = self.config.num_layers // self.period
        self.runs = [nn.scan(RunStep, variable_broadcast="params", split_rngs={"params": False},
                             in_axes=(0, nn.broadcast, nn.broadcast, nn.broadcast), length=length)(
                                 self.config, first, groups * length, length, name=f"run_{r}")
                     for r, (first, length) in enumerate(layer_runs(self.config, self.period))]

    def __call__(self, carry, group, write_index, kv_len):
        x, cache = carry
        new_cache = []
        for run, run_cache in zip(self.runs, cache):
            steps = jnp.arange(run.length, dtype=jnp.int32)
            (x, run_cache), _ = run((x, run_cache), steps, group, write_index, kv_len)
            new_cache.append(run_cache)
        return (x, new_cache), None


class Transformer(nn.Module):
    """Tokens -> final hidden states (`__call__`); hidden states -> logits (`logits`).

    The two are separate so callers compute the [*, V] logits only at the positions they
    sample from: for a 2 000-token prompt that is one row instead of 2 000.
    """

    config: GemmaConfig
    dtype: Any = jnp.float32  # activation dtype
    # 0: every layer its own module and arrays, unrolled in the program. p > 0: a loop over the
    # groups of p layers (see the module's docstring); parameters from stack_layers(params, p),
    # the cache from init_cache(..., period=p).
    layer_period: int = 0

    def setup(self):
        c = self.config
        self.embedder = Embedder(c.vocab_size, c.embed_dim)
        if self.layer_period:
            if not repeats_every(c, self.layer_period):
                raise ValueError(f"{c.name}: the layer pattern does not repeat every {self.layer_period} layers")
            self.layer_loop = nn.scan(LayerGroup, variable_broadcast="params", split_rngs={"params": False},
                                      in_axes=(0, nn.broadcast, nn.broadcast),
                                      length=c.num_layers // self.layer_period)(c, self.layer_period, name="layers")
        else:
            self.layers = [Block(c, i, name=f"layer_{i}") for i in range(c.num_layers)]
        self.final_norm = RMSNorm(c.norm_eps)

    def __call__(self, tokens: jax.Array, cache: Cache, write_index: jax.Array,
                 kv_len: int) -> tuple[jax.Array, Cache]:
        """tokens [B, T] at positions write_index + [0, T) -> hidden [B, T, D], updated cache."""
        x = self.embedder.encode(tokens, self.dtype)
        if self.layer_period:
            groups = jnp.arange(self.config.num_layers // self.layer_period, dtype=jnp.int32)
            (x, new_cache), _ = self.layer_loop((x, list(cache)), groups, write_index, kv_len)
            return self.final_norm(x), new_cache
        new_cache = []
        for layer, layer_cache in zip(self.layers, cache):
            x, layer_cache = layer(x, layer_cache, write_index, kv_len)
            new_cache.append(layer_cache)
        return self.final_norm(x), new_cache

    def logits(self, hidden: jax.Array) -> jax.Array:
        logits = self.embedder.decode(hidden).astype(jnp.float32)
        cap = self.config.final_logit_softcap
        return jnp.tanh(logits / cap) * cap if cap is not None else logits

    def greedy(self, hidden: jax.Array) -> jax.Array:
        """The greedy token after each hidden state, int32 [...]: argmax(logits(hidden)) (the softcap,
        where there is one, keeps the order), without forming the logits where the head allows."""
        if self.config.final_logit_softcap is not None:
            return native.argmax(self.logits(hidden))
        return self.embedder.greedy(hidden)


def init_params(config: GemmaConfig, seed: int = 0, scale: float = 0.2) -> dict:
    """Random parameters with the checkpoint's tree (for tests and tiny checkpoints)."""
    model = Transformer(config)
    cache = init_cache(config, 1, 8)
    params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, 1), jnp.int32), cache,
                        jnp.zeros((), jnp.int32), 8)["params"]
    # Non-zero norm scales, so tests notice a missing or doubled "+1".
    keys = iter(jax.random.split(jax.random.PRNGKey(seed + 1), 4096))
    return jax.tree.map(lambda p: jax.random.normal(next(keys), p.shape, p.dtype) * scale, params)
