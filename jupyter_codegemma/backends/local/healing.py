"""Token healing: a cursor after a space (`x = foo(a, `, `    hours `) or in a word (`for op in o`, `retu`).

SentencePiece writes a space as the start of the next word's token (`▁=`, `▁foo`), so a prompt that ends
in a space ends in a token the model has seldom seen last: after `hours` + `▁` Gemma 3 270M writes
`1 = pd.concat([` (a name `hours 1`), after `def` + `▁` a name starting with a digit. Healing takes the
blank token off the prompt and lets the first generated token be only one whose text begins with those
blanks (`▁=`, `▁pd`): the model then writes the space itself, as in the code it learned from, and the
suggestion is what follows the blanks the user typed.

A word the user has begun is cut into tokens no finished word has (`for op in o` ends in `▁o`, where the
model learned `▁operations`; `retu` is `▁ret` + `u`): after them Gemma 3 270M starts a new word
(`ooperations`, `retu = s[...]`). Healing takes the word's tokens off (up to MAX_WORD_TOKENS, the last
ones of the word, as many as some token still begins with) and lets the first generated token be only
one that begins with their text (`▁operations`, `▁return`): the suggestion is the rest of the word and
what follows it.

Only after code on the same line, and only for prompts that end with the cursor (models without FIM
pieces): a FIM prompt ends in `<fim_middle>`, and a line's indentation after a newline is already how
the model saw it. The first step is masked like a name constraint's (constraint.py), so it adds no
compiled program.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import numpy as np

from . import vocabulary
from .vocabulary import piece_text

_BLANKS = frozenset(" \t")
MAX_WORD_TOKENS = 3  # the most tokens of a begun word taken off (a word the cursor is in is short)


@dataclasses.dataclass(frozen=True)
class Healing:
    """The text taken off the end of a prompt (blanks, or a begun word), and the tokens allowed to write it again."""

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
    """`prompt_ids` without the last blank token that follows code on its line, or without the tokens of
    the word the prompt ends in; and the healing that writes them again. Else the prompt as it is and None."""
    ids = list(prompt_ids)
    if len(ids) < 3:
        return ids, None
    text = piece_text(tokenizer, ids[-1])
    before = piece_text(tokenizer, ids[-2])
    if text and set(text) <= _BLANKS:
        if not before.strip() or before.endswith("\n"):
            return ids, None
        mask = _starting_with(tokenizer, text)
        return (ids[:-1], Healing(text, mask)) if mask.any() else (ids, None)
    word = _word_tokens(tokenizer, ids)
    for taken in range(len(word), 0, -1):  # the whole begun word if a token begins with it, else less
        text = "".join(word[-taken:])
        mask = _starting_with(tokenizer, text)
        if mask.any():
            return ids[:-taken], Healing(text, mask)
    return ids, None


def _word_tokens(tokenizer, ids: Sequence[int]) -> list[str]:
    """The texts of the last tokens of `ids` that write the word the prompt ends in (at most
    MAX_WORD_TOKENS, never the first id: the prompt keeps <bos> and one more)."""
    texts: list[str] = []
    for i in range(len(ids) - 1, 1, -1):
        text = piece_text(tokenizer, ids[i])
        body = text[1:] if text[:1] == " " else text
        if not body or not all(c.isalnum() or c == "_" for c in body) or len(texts) == MAX_WORD_TOKENS:
            break
        texts.insert(0, text)
        if body != text:
            break  # the space before it: the word starts here
    return texts


@functools.lru_cache(maxsize=32)
def _starting_with(tokenizer, text: str) -> np.ndarray:
    """[V] bool: the tokens whose text begins with `text`, a run of blanks or a begun word (` ret`, `u`)
    (computed once per text)."""
    mask = np.zeros(tokenizer.vocab_size, bool)
    if set(text) <= _BLANKS:
        mask[vocabulary.tables(tokenizer).starting_with(text)] = True
    else:
        mask[vocabulary.word_beginnings(tokenizer).starting_with(text)] = True
    return mask


class DecoderAfter:
    """An IncrementalDecoder whose text starts after `skip` (what the healed prompt lost)."""

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
    """ids -> text of a suggestion (after the healed text, if any)."""
    if healed is None:
        return tokenizer.decode
    return lambda ids: tokenizer.decode(ids)[len(healed.text):]
