"""Attention's arithmetic: each query position's softmax over the keys it may see (causal, and within
the sliding window for a local layer), computed as a few large matrix products per KV head.

`attend` picks how a call's queries are grouped, which never changes the result (each query row's
softmax is its own): decode steps and draft checks all at once; a sliding-window layer's prompt chunk
in blocks of positions, each over only the keys its window reaches; a long chunk of a global layer in
blocks that keep its logits within a memory bound.

Shapes as in model.py: B batch, K key/value heads, T query positions, G query heads per KV head,
L attended keys, H head_dim.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from .config import GemmaConfig

# A large finite negative rather than -inf, so fully-masked rows (padding) stay finite.
_MASKED = -2.3819763e38
# Up to this many query rows per KV head (T·G: a decode step's 4, a draft check's 32 for Gemma 3
# 270M), attention multiplies the keys as the left operand; prompt chunks keep the original form.
_FEW_QUERY_ROWS = 32

# A prompt chunk's attention logits are [T·G, L] float32 per KV head — 32 MB for a 512-position
# chunk of Gemma 3 270M over 4 096 keys — and the softmax holds two or three such arrays at once:
# most of a prompt step's temporary memory, and so of the process's peak. Above this many bytes of
# logits, the chunk's queries attend in blocks, one block after the other (each row's softmax is
# its own, so the result is the same). 2 MB rather than 8: a 512-position chunk's temporaries
# 26-30 -> 16-20 MB, the benchmark's peak RSS 727-732 -> 719 MB, prefill at 2 000 tokens unchanged
# (4.29 against 4.24 s, in turns).
_MAX_LOGIT_BYTES = 2 << 20


def _attend_in_blocks(c: GemmaConfig, local: bool, q, keys, values, positions, key_positions) -> jax.Array:
    """_attend over query blocks of whole positions, as few as keep each block's logits within
    _MAX_LOGIT_BYTES."""
    batch, heads, rows, dim = q.shape
    length, view = positions.shape[0], key_positions.shape[0]
    blocks = 1
    while length % (2 * blocks) == 0 and batch * heads * (rows // blocks) * view * 4 > _MAX_LOGIT_BYTES:
        blocks *= 2
    if blocks == 1:
        return _attend(c, local, q, keys, values, positions, key_positions)
    return _map_query_blocks(lambda q_block, block_positions: _attend(
        c, local, q_block, keys, values, block_positions, key_positions), q, positions, blocks)


def _map_query_blocks(attend_block, q, positions, blocks: int) -> jax.Array:
    """attend_block(q_block, block_positions) over `blocks` equal blocks of whole query positions, one
    after the other (lax.map); q [B, K, T·G, H] (rows position-major) -> [B, K, T·G, H]."""
    batch, heads, rows, dim = q.shape
    q_blocks = q.reshape(batch, heads, blocks, rows // blocks, dim).transpose(2, 0, 1, 3, 4)
    encoded = lax.map(lambda block: attend_block(*block),
                      (q_blocks, positions.reshape(blocks, -1)))  # [blocks, B, K, rows / blocks, H]
    return encoded.transpose(1, 2, 0, 3, 4).reshape(batch, heads, rows, dim)


# A sliding-window layer's prompt chunk of T positions reads T + window keys, but each query sees only
# `window` of them: half of a 512-position chunk's attention work (Gemma 3 270M) is masked out.
# Blocks of this many query positions, each over its own block + window keys, do 62 % of it: measured
# for one layer of Gemma 3 270M, a 512-position chunk, 2-core AMD EPYC (AVX2), in one process,
# alternating: 20-23 ms at once, 14-16 ms in blocks (blocks of 32, 64 or 256 alike).
_SLIDING_QUERY_BLOCK = 128


def _attend_sliding_blocks(c: GemmaConfig, q, keys, values, positions, key_positions) -> jax.Array | None:
    """A sliding-window layer's _attend, its queries in blocks of _SLIDING_QUERY_BLOCK positions, each
    over only the keys its window reaches (a slice of the chunk's view, from key_positions[0]); None
    when the chunk is too short for blocks to save work."""
    length, view = positions.shape[0], key_positions.shape[0]
    block = _SLIDING_QUERY_BLOCK
    block_view = block + c.sliding_window  # a block's first query sees window - 1 keys before it
    if length < 2 * block or length % block or block_view >= view:
        return None

    def attend_block(q_block, block_positions):
        # The slice that ends at the block's last position (or the view's first block_view keys).
        offset = jnp.clip(block_positions[-1] + 1 - block_view - key_positions[0], 0, view - block_view)
        block_keys = lax.dynamic_slice_in_dim(keys, offset, block_view, axis=1)
        block_values = lax.dynamic_slice_in_dim(values, offset, block_view, axis=1)
        return _attend(c, True, q_block, block_keys, block_values, block_positions,
                       key_positions[0] + offset + jnp.arange(block_view))

    return _map_query_blocks(attend_block, q, positions, length // block)


def _attend(c: GemmaConfig, local: bool, q, keys, values, positions, key_positions) -> jax.Array:
    """q [B, K, T·G, H] (positions [T]) over keys and values [B, L, K, H] (key_positions [L]) ->
    [B, K, T·G, H].

    Per KV head, its G query heads at all T positions form one [T·G, H] matrix, so each of
    the two products is a single large matrix product per KV head (for Gemma 3 270M, one
    [2048, 256] x [256, L] product per layer). The same math with the heads as a separate
    batch axis ("BTKGH,BLKH->BKGTL") ran twice as slow on XLA's CPU backend for prompt
    chunks (measured: 20.5 against 9.6 ms for 512 queries over 1 024 keys), because the
    products were small and their operands transposed."""
    batch, heads, rows, _ = q.shape
    length, view = positions.shape[0], key_positions.shape[0]
    groups = rows // length
    if rows <= _FEW_QUERY_ROWS:
        # Decoding and draft checks: the keys are the large operand, and XLA's CPU backend
        # multiplies them as the left operand [L, H] without first copying them into [H, L]
        # (that copy cost 0.23 ms per layer and step over 513 keys, a tenth of a decode step).
        logits = jnp.einsum("BLKH,BKMH->BKLM", keys, q).swapaxes(-1, -2).astype(jnp.float32)
    else:
        logits = jnp.einsum("BKMH,BLKH->BKML", q, keys).astype(jnp.float32)
    logits = logits.reshape(batch, heads, length, groups, view)  # [B, K, T, G, L]
    if c.attn_logit_softcap is not None:
        logits = jnp.tanh(logits / c.attn_logit_softcap) * c.attn_logit_softcap
    visible = key_positions[None, :] <= positions[:, None]  # [T, L]
    if local:
        visible &= key_positions[None, :] > positions[:, None] - c.sliding_window
    logits = jnp.where(visible[:, None, :], logits, _MASKED)
    probs = jax.nn.softmax(logits, axis=-1).astype(q.dtype)
    probs = probs.reshape(batch, heads, rows, view)
    return jnp.einsum("BKML,BLKH->BKMH", probs, values)


def attend(c: GemmaConfig, local: bool, q, keys, values, positions, key_positions) -> jax.Array:
    """q [B, K, T·G, H] (positions [T]) over keys and values [B, L, K, H] (key_positions [L]) ->
    [B, K, T·G, H]: in sliding-window blocks, in query blocks, or all at once (same result)."""
    encoded = _attend_sliding_blocks(c, q, keys, values, positions, key_positions) if local else None
    if encoded is None:
        encoded = _attend_in_blocks(c, local, q, keys, values, positions, key_positions)
    return encoded
