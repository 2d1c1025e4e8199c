"""Prompt-lookup drafting for speculative decoding.

Code repeats itself: names, calls, whole lines recur within a file. When the last few tokens
also occur earlier in the context, the tokens that followed them there are a cheap guess at
what comes next. The sampler checks a whole guess in one forward pass — which costs about as
much as decoding one token, since decoding is bound by reading the weights — and keeps the
longest prefix on which the model's own greedy choices agree. Output is unchanged; only the
number of passes drops.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def draft_from_context(ids: Sequence[int], *, max_ngram: int = 3, min_ngram: int = 2, max_draft: int = 7,
                       window: int = 4096) -> list[int]:
    """Up to `max_draft` ids that followed the latest earlier occurrence of the context's last
    n ids (n from `max_ngram` down to `min_ngram`), searching the last `window` ids; [] when none.

    A single matching id is a weak guess (a checked guess that fails costs more than a plain
    step), hence the default `min_ngram` of 2."""
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
