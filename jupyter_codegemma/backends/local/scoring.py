"""Log-likelihoods of several texts in one scoring pass, sharing their common prefix (no generation).

What ranks the repair search's verified fixes (exercises/repair.py): the candidates are the same
program with a small edit, so their token ids agree up to the first edit. The shared prefix is run once,
for one row, filling a KV cache; that cache is copied to every candidate's row, and only the rest of
each candidate — from the last shared token on — goes through the model, with the vocabulary head
(the costly part of a 270M model: 262 144 x 640) at those positions only.

The result is each text's log-likelihood after the longest prefix all texts share: that prefix's part
is the same for every text, so the order is the order of the whole texts' likelihoods.

`continuation_logprob` scores differently, for the suggestions of one keystroke: they all continue the
prompt the sampler has just cached, so each is run from there through the sampler's own prompt chunks
(the cached prompt is never run again, and each chunk attends over the cache's view it needs), with the
head at the chunk's positions only.

Shapes are static, in buckets (the cache length T and the suffix length S are powers of two, the batch
2 or 4 rows, more in several passes), so a handful of programs serve every exercise. Each is compiled
once per machine: programs.py saves the traced program, and XLA's cache the compiled one.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

if TYPE_CHECKING:
    from .model_spec import Model


__all__ = ["continuation_logprob", "score_ids", "score_texts"]

ROWS = (2, 4)  # batch buckets: the fixes a search ranks are few
MIN_LEN = 32  # the shortest cache: with MIN_SPAN, a few programs (each compiled once) cover short exercises
MIN_SPAN = 16


def _pow2(n: int, least: int = MIN_LEN) -> int:
    size = least
    while size < n:
        size *= 2
    return size


def _target_logprobs(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """log p(targets) under logits [..., V] at each position: targets [...] -> [...]."""
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return picked - jax.nn.logsumexp(logits, axis=-1)


@functools.partial(jax.jit, static_argnames=("model", "rows", "span"), donate_argnames=("cache",))
def suffix_logprobs(model: Model, params, prefix, cache, suffix, write_index, *, rows: int, span: int):
    """prefix [1, T] (its first write_index ids shared by all rows) into a fresh cache [1, T], then suffix
    [rows, span + 1] from write_index -> (log p(suffix[:, j + 1] | all before it) for j < span: [rows, span],
    the prefix's cache). The cache is the third argument, as in every step (programs.py donates it)."""
    length = prefix.shape[1]
    _, cache = model.apply({"params": params}, prefix, cache, jnp.int32(0), length)
    rows_cache = jax.tree.map(lambda v: jnp.repeat(v, rows, axis=-4), cache)  # along B of [(G,) B, S, K, H]
    hidden, _ = model.apply({"params": params}, suffix[:, :span], rows_cache, write_index, length)

    def row(args):
        h, targets = args  # [S, D], [S]
        return _target_logprobs(model.apply({"params": params}, h, method="logits"), targets)

    return lax.map(row, (hidden, suffix[:, 1:])), cache


def score_ids(sampler, texts_ids: Sequence[Sequence[int]], max_len: int) -> list[float]:
    """The log-likelihood of each id list after the prefix they all share (see the module's docstring), with
    the prefill weights of `sampler` (a Sampler) and through its saved programs (programs.py)."""
    if not texts_ids:
        return []
    if any(len(ids) < 2 for ids in texts_ids):
        raise ValueError("each text to score needs at least two tokens (BOS and one more)")
    longest = max(len(ids) for ids in texts_ids)
    if longest > max_len:
        raise ValueError(f"a text to score has {longest} tokens; the context holds {max_len}")
    shared = len(texts_ids[0])  # the longest prefix of ids every text shares with the first (so with all)
    for ids in texts_ids[1:]:
        same = next((i for i, (a, b) in enumerate(zip(texts_ids[0], ids)) if a != b), min(len(ids), shared))
        shared = min(shared, same)
    first = max(shared - 1, 0)  # the last shared token predicts the first that differs
    length = min(_pow2(longest + 1), max_len)
    span = min(_pow2(longest - first, MIN_SPAN), length)
    start = min(first, length - span)  # earlier still, when the cache is too short for the padded suffix
    prefix = np.zeros((1, length), np.int32)
    prefix[0, :len(texts_ids[0])] = texts_ids[0]
    scores: list[float] = []
    for i in range(0, len(texts_ids), ROWS[-1]):
        group = texts_ids[i:i + ROWS[-1]]
        rows = next(r for r in ROWS if r >= len(group))
        suffix = np.zeros((rows, span + 1), np.int32)
        mask = np.zeros((rows, span), bool)
        for r, ids in enumerate(group):
            part = list(ids[start:start + span + 1])
            suffix[r, :len(part)] = part
            # position start + j predicts token start + j + 1: count it when that token is after the shared
            # prefix and is one of this text's
            j = np.arange(span)
            mask[r] = (start + j + 1 >= shared) & (start + j + 1 < len(ids))
        cache = sampler._place_cache(sampler.new_cache(length))
        logprobs, _ = sampler._run(suffix_logprobs, sampler.prefill_model, sampler.prefill_params, jnp.asarray(prefix),
                                   cache, jnp.asarray(suffix), jnp.int32(start), rows=rows, span=span)
        values = np.where(mask, np.asarray(logprobs, np.float64), 0.0).sum(axis=1)
        scores += [float(v) for v in values[:len(group)]]
    return scores


def score_texts(sampler, texts_ids: Sequence[Sequence[int]], max_len: int) -> list[float]:
    """`score_ids` holding the sampler's lock (one thread uses the model at a time)."""
    with sampler.locked():
        return score_ids(sampler, texts_ids, max_len)


@functools.partial(jax.jit, static_argnames=("model", "kv_len"), donate_argnames=("cache",))
def chunk_logprobs(model: Model, params, tokens, cache, write_index, targets, *, kv_len: int):
    """A prompt chunk as the sampler prefills it (tokens [1, T] at write_index) -> (log p(targets[0, j] |
    the context up to tokens[0, j]) [1, T], cache)."""
    hidden, cache = model.apply({"params": params}, tokens, cache, write_index, kv_len)
    return _target_logprobs(model.apply({"params": params}, hidden, method="logits"), targets), cache


def continuation_logprob(sampler, ids: Sequence[int], start: int) -> float:
    """log p(ids[start:] | ids[:start]) with the prefill weights of `sampler` (a Sampler), whose cache keeps
    what it already holds of `ids` (the prompt of the request being served) and holds all of `ids` after.
    The caller holds the sampler's lock."""
    n = len(ids)
    if not 0 < start < n:
        raise ValueError(f"the scored part must be non-empty and follow at least one id: start={start}, {n} ids")
    if n > sampler.cache_len:
        raise ValueError(f"the text to score has {n} tokens but the KV cache holds {sampler.cache_len}")
    # The position before `start` predicts ids[start]: it runs again even when the cache holds it.
    reused = min(sampler._common_prefix(sampler._cached_ids, ids), start - 1)
    cache = sampler._take_cache()
    sampler._cached_ids = []  # until every chunk has run, nothing in the cache is trusted (a failure leaves a fresh one)
    total = 0.0
    for begin, chunk, padded, kv_len in sampler._chunks(reused, n):
        tokens = np.zeros((1, padded), np.int32)
        tokens[0, :chunk] = ids[begin:begin + chunk]
        targets = np.zeros((1, padded), np.int32)
        following = ids[begin + 1:begin + chunk + 1]
        targets[0, :len(following)] = following
        logprobs, cache = sampler._run(chunk_logprobs, sampler.prefill_model, sampler.prefill_params,
                                       jnp.asarray(tokens), cache, jnp.int32(begin), jnp.asarray(targets),
                                       kv_len=kv_len)
        position = np.arange(begin, begin + padded)
        counted = (position >= start - 1) & (position < n - 1)
        total += float(np.where(counted, np.asarray(logprobs[0], np.float64), 0.0).sum())
    sampler._cache = cache
    sampler._cached_ids = list(ids)
    return total
