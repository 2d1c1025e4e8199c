"""Prompt-lookup drafting for speculative decoding.

Code repeats itself: names, calls, whole lines recur within a file. When the last few tokens
also occur earlier in the context, the tokens that followed them there are a cheap guess at
what comes next. The sampler checks a whole guess in one forward pass — which costs about as
much as decoding one token, since decoding is bound by reading the weights — and keeps the
longest prefix on which the model's own greedy choices agree: the same ids as one token per pass,
up to rounding. (A draft check runs the layers over 8 rows where a decode step runs 1, and XLA rounds
some fused row operations differently by shape; with int8 weights the kernels round activations to
8 bits, which now and then turns such a last-bit difference into a logit difference of up to ~1, and
at a near tie into another token. docs/correctness-and-speed.md, "A draft check's rounding".)

`draft_from_context` makes the guesses; `greedy_with_drafts` is the sampler's greedy loop that checks
them (verify_step, steps.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Collection, Iterator, Sequence

import jax
import numpy as np

from ..base import CancelToken, StepStats
from .steps import NO_ID, SamplerShape, decode_step, read_id, recent_window, verify_step

if TYPE_CHECKING:
    from .sampler import Sampler

DRAFT_LEN = 7  # guesses checked per pass
VERIFY_LEN = DRAFT_LEN + 1  # the last token and its guesses: one static shape


def draft_from_context(ids: Sequence[int], *, max_ngram: int = 3, min_ngram: int = 3, max_draft: int = DRAFT_LEN,
                       window: int = 4096) -> list[int]:
    """Up to `max_draft` ids that followed the latest earlier occurrence of the context's last
    n ids (n from `max_ngram` down to `min_ngram`), searching the last `window` ids; [] when none.

    A short match is a weak guess, and a checked guess that fails costs more than a plain step: on
    the AVX2 kernels a check of 8 positions costs about three decode steps (the layers' products are
    bound by arithmetic at 8 rows, by memory at 1). Hence the default `min_ngram` of 3: over 16 code
    prompts of 128 greedy tokens, 67-72 tok/s matching two ids, 75-81 matching three
    (docs/correctness-and-speed.md, "Half the output head per greedy step")."""
    if max_draft < 1 or len(ids) < 2:
        return []
    context = np.asarray(ids[-window:], dtype=np.int64)
    n_ids = len(context)
    for n in range(min(max_ngram, n_ids - 1), min_ngram - 1, -1):
        pattern = context[n_ids - n:]
        # Candidate starts whose first id matches, then check the rest of the n-gram.
        starts = np.flatnonzero(context[: n_ids - n] == pattern[0])
        for start in starts[::-1]:  # the latest occurrence first: the most local context
            if start + n <= n_ids - n and np.array_equal(context[start:start + n], pattern):
                follow = context[start + n: start + n + max_draft]
                if len(follow):
                    return [int(i) for i in follow]
    return []


def greedy_with_drafts(sampler: Sampler, prompt_ids: Sequence[int], first: int, max_new_tokens: int,
                       stop_ids: Collection[int], cancel: CancelToken | None, stats: StepStats,
                       shape: SamplerShape = SamplerShape(True, None, False),
                       repetition_penalty: float = 1.0) -> Iterator[int]:
    """Greedy decoding that verifies prompt-lookup drafts: each pass feeds the last token and
    up to DRAFT_LEN guesses, and keeps the model's own argmax for every position up to the
    first wrong guess — the same ids as one token per pass. With a repetition penalty each
    position's argmax is penalised over its own window (the context up to the token fed there),
    as plain penalised decoding picks it.

    `sampler`'s loop for greedy decoding (Sampler.generate, under its lock, once the prompt is
    prefilled and `first` picked): it runs the sampler's steps on its KV cache and keeps the
    cache's bookkeeping (`_cached_ids`) as the plain loop does."""
    window = shape.penalty_window
    # Arguments go to the compiled steps as numpy values: a jnp scalar is a dispatched computation
    # (0.1-0.3 ms each on two cores, a few per pass).
    penalty = np.float32(repetition_penalty) if window else None
    unused_key, one = sampler.greedy_key, np.float32(1)  # greedy decode steps ignore both
    context = list(prompt_ids) + [first]
    position = len(prompt_ids)  # where the last token's keys and values go
    emitted = 0
    try:
        pending = [first]
        while True:
            for token_id in pending:
                emitted += 1
                stats.new_tokens += 1
                yield token_id
                if token_id in stop_ids:
                    stats.finish_reason = "stop"
                    return
                if emitted == max_new_tokens:
                    return
            if cancel is not None and cancel.is_set():
                stats.finish_reason = "cancelled"
                return
            room = min(max_new_tokens - emitted - 1, sampler.cache_len - position - VERIFY_LEN, DRAFT_LEN)
            draft = draft_from_context(context, max_draft=room) if room > 0 else []
            if position + 1 > sampler.cache_len:
                stats.finish_reason = "context"
                return
            if not draft:
                cache = sampler._take_cache()
                extra = (recent_window(context[-window - 1:-1], window)[None], penalty) if window else ()
                token, _, cache, *_ = sampler._run(
                    decode_step, sampler.model, sampler.params, np.asarray([context[-1]], np.int32), cache,
                    np.int32(position),
                    unused_key, one, one, *extra,
                    kv_len=sampler.kv_len(1, position + 1), shape=shape)
                sampler._cache = cache
                pending = [read_id(token)]
            else:
                fed = np.zeros((1, VERIFY_LEN), np.int32)
                fed[0, :1 + len(draft)] = [context[-1]] + draft
                extra, statics = (), {}
                if window:  # position j's window: the context and the guesses fed up to j
                    windows = np.full((1, VERIFY_LEN, window), NO_ID, np.int32)
                    for j in range(1 + len(draft)):
                        windows[0, j] = recent_window(context[-window:] + draft[:j], window)
                    extra, statics = (windows, penalty), {"shape": shape}
                cache = sampler._take_cache()
                choices, cache = sampler._run(verify_step, sampler.model, sampler.params, fed, cache,
                                              np.int32(position), *extra,
                                              kv_len=sampler.kv_len(VERIFY_LEN, position + VERIFY_LEN), **statics)
                sampler._cache = cache
                choices = np.asarray(choices[0]).tolist()
                pending = [choices[0]]
                for guess, choice in zip(draft, choices[1:]):
                    if pending[-1] != guess:
                        break
                    pending.append(choice)
                stats.draft_accepted += len(pending) - 1
            # Keys and values are now valid for the fed tokens that were right: the last
            # token and the accepted guesses (pending[:-1]).
            sampler._cached_ids = context[:] + pending[:-1]
            context += pending
            position += len(pending)
    except GeneratorExit:
        raise  # closed between passes: the cache holds exactly `_cached_ids` (see Sampler._generate_locked)
    except BaseException:
        sampler.reset()
        raise
