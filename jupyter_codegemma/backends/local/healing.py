"""Token healing for a cursor after a space: `x = foo(a, ` or `    hours `.

SentencePiece writes a space as the start of the next word's token (`▁=`, `▁foo`), so a prompt that ends
in a space ends in a token the model has seldom seen last: after `hours` + `▁` Gemma 3 270M writes
`1 = pd.concat([` (a name `hours 1`), after `def` + `▁` a name starting with a digit. Healing takes the
blank token off the prompt and lets the first generated token be only one whose text begins with those
blanks (`▁=`, `▁pd`): the model then writes the space itself, as in the code it learned from, and the
suggestion is what follows the blanks the user typed.

Only for a blank token after code on the same line, and only for prompts that end with the cursor
(models without FIM pieces): a FIM prompt ends in `<fim_middle>`, and a line's indentation after a
newline is already how the model saw it. The first step is masked like a name constraint's
(constraint.py), so it adds no compiled program.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import numpy as np

from . import vocabulary
from .vocabulary import piece_text

_BLANKS = frozenset(" \t")


@dataclasses.dataclass(frozen=True)
class Healing:
    """The blanks taken off the end of a prompt, and the tokens allowed to write them again."""

    text: str
    mask: np.ndarray  # [V] bool

    # The interface of constraint.NameTrie that constraint.generate uses: one masked step, after which
    # no token "continues" (the root has no children), so decoding goes on unconstrained.
    @property
    def root(self) -> "_Start":
        return _START

    def allowed(self, node: "_Start") -> np.ndarray:
        return self.mask


@dataclasses.dataclass(frozen=True)
class _Start:
    children: tuple = ()


_START = _Start()


def heal(tokenizer, prompt_ids: Sequence[int]) -> tuple[list[int], Healing | None]:
    """`prompt_ids` without a last blank token that follows code on its line, and the healing that
    writes it again; or the prompt as it is and None."""
    ids = list(prompt_ids)
    if len(ids) < 3:
        return ids, None
    text = piece_text(tokenizer, ids[-1])
    before = piece_text(tokenizer, ids[-2])
    if not text or not set(text) <= _BLANKS or not before.strip() or before.endswith("\n"):
        return ids, None
    mask = _starting_with(tokenizer, text)
    if not mask.any():
        return ids, None
    return ids[:-1], Healing(text, mask)


@functools.lru_cache(maxsize=16)
def _starting_with(tokenizer, blanks: str) -> np.ndarray:
    """[V] bool: the tokens whose text begins with `blanks` (computed once per run of blanks)."""
    mask = np.zeros(tokenizer.vocab_size, bool)
    mask[vocabulary.tables(tokenizer).starting_with(blanks)] = True
    return mask


class DecoderAfter:
    """An IncrementalDecoder whose text starts after `skip` (the blanks the healed prompt lost)."""

    def __init__(self, decoder, skip: str):
        self._decoder, self._left = decoder, len(skip)

    def _after(self, piece: str) -> str:
        cut = min(self._left, len(piece))
        self._left -= cut
        return piece[cut:]

    def push(self, token_id: int) -> str:
        return self._after(self._decoder.push(token_id))

    def flush(self) -> str:
        return self._after(self._decoder.flush())


def decoder_of(tokenizer, healed: Healing | None):
    """ids -> text of a suggestion (after the healed blanks, if any)."""
    if healed is None:
        return tokenizer.decode
    return lambda ids: tokenizer.decode(ids)[len(healed.text):]
