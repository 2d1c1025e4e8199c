"""Constrained decoding: a completion that must begin with one of a set of names (the attributes after
`obj.`, the keys after `d["`, the keyword arguments of a call), the model choosing among them.

The names' token sequences (in the model's tokenizer) form a trie. At each of the first steps the
logits are masked on the host to the trie's next tokens; once a whole name has been produced, a token
that does not continue an identifier (a bracket, a space, a newline, <eos>) is allowed too, and the
first such token releases the constraint: decoding goes on as usual from there. The masked steps take
their logits from the prefill step the sampler already has (the prompt so far, its cached prefix
reused: one new token a step), so the constraint adds no compiled program; only these few steps
give up dispatching the next step before reading the current one back.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import numpy as np

from ..base import CancelToken, SamplingParams, StepStats
from . import vocabulary


@dataclasses.dataclass
class _Node:
    children: dict[int, "_Node"] = dataclasses.field(default_factory=dict)
    terminal: bool = False  # a whole name ends here


class NameTrie:
    """The token sequences of `names` (each as the tokenizer writes it on its own)."""

    def __init__(self, tokenizer, names: Sequence[str]):
        names = [name for name in dict.fromkeys(names) if name]
        if not names:
            raise ValueError("a name constraint needs at least one non-empty name")
        self.names = tuple(names)
        self.root = _Node()
        for name in names:
            node = self.root
            for token in tokenizer.encode(name, add_bos=False):
                node = node.children.setdefault(int(token), _Node())
            node.terminal = True
        self._continues = identifier_continuing(tokenizer)

    def allowed(self, node: _Node) -> np.ndarray:
        """[V] bool: the tokens that may come at `node`."""
        mask = ~self._continues if node.terminal else np.zeros(self._continues.shape, bool)
        mask = mask.copy()
        mask[list(node.children)] = True
        return mask


def identifier_continuing(tokenizer) -> np.ndarray:
    """[V] bool: tokens whose text starts with a letter, digit or '_' (they would lengthen a name)."""
    return vocabulary.tables(tokenizer).identifier_continuing


def pick(logits: np.ndarray, mask: np.ndarray, sampling: SamplingParams, rng: np.random.Generator) -> int:
    """The next token among those `mask` allows, as `sampling` picks (greedy, or temperature/top-k/top-p)."""
    masked = np.where(mask, logits.astype(np.float64), -np.inf)
    if sampling.greedy:
        return int(np.argmax(masked))
    scaled = masked / max(sampling.temperature, 1e-6)
    order = np.argsort(-scaled)[:max(int(mask.sum()), 1)]
    if sampling.top_k is not None:
        order = order[:sampling.top_k]
    probs = np.exp(scaled[order] - scaled[order[0]])
    probs /= probs.sum()
    if sampling.top_p is not None and sampling.top_p < 1:
        keep = (np.cumsum(probs) - probs) < sampling.top_p
        order, probs = order[keep], probs[keep] / probs[keep].sum()
    return int(rng.choice(order, p=probs))


def generate(sampler, prompt_ids: Sequence[int], trie: NameTrie, *, max_new_tokens: int,
             sampling: SamplingParams = SamplingParams(), stop_ids: Sequence[int] = (),
             cancel: CancelToken | None = None, stats: StepStats | None = None) -> Iterator[int]:
    """Yield generated ids (as Sampler.generate does) whose text begins with one of the trie's names."""
    stats = stats if stats is not None else StepStats()
    rng = np.random.default_rng(sampling.seed)
    chosen: list[int] = []
    node = trie.root
    while len(chosen) < max_new_tokens:
        if cancel is not None and cancel.is_set():
            stats.finish_reason = "cancelled"
            return
        with sampler.locked():  # the sampler's own lock: its cache is in use by one request at a time
            _, logits = sampler.prefill(list(prompt_ids) + chosen, stats=stats if not chosen else None)
            logits = np.asarray(logits[0], np.float32)
        if sampling.penalised:
            recent = (list(prompt_ids) + chosen)[-sampling.repetition_window:]
            logits[recent] = np.where(logits[recent] > 0, logits[recent] / sampling.repetition_penalty,
                                      logits[recent] * sampling.repetition_penalty)
        token = pick(logits, trie.allowed(node), sampling, rng)
        chosen.append(token)
        stats.new_tokens += 1
        yield token
        if token in stop_ids:
            stats.finish_reason = "stop"
            return
        if token not in node.children:
            break  # a whole name, then a token that ends it: the constraint is met
        node = node.children[token]
    else:
        stats.finish_reason = "length"
        return
    prompt_tokens, reused = stats.prompt_tokens, stats.reused_tokens
    yield from sampler.generate(list(prompt_ids) + chosen, max_new_tokens=max_new_tokens - len(chosen),
                                sampling=sampling, stop_ids=stop_ids, cancel=cancel, stats=stats)
    stats.prompt_tokens, stats.reused_tokens = prompt_tokens, reused
