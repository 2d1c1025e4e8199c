"""What each token writes, and the per-token tables that constrained decoding and token healing read.

The tables are computed in one pass over the vocabulary's texts and kept; the texts are not. For Gemma 3's
262 144 pieces the texts are that many Python strings (~18 MB, and SentencePiece's pieces as many
again), where the tables take ~0.8 MB: a [V] bool array and the ids of the blank-led tokens grouped by
their leading blanks (137 574 ids under 62 distinct leads). The texts of the tokens that begin a word
(a letter, digit or '_', after at most one space: 243 930 of them) are kept as UTF-8 in one sorted blob
with their offsets (~4 MB), so that the tokens beginning with a part of a word are one binary search away.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import re
from typing import Iterator

import numpy as np

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_BLANKS = frozenset(" \t")


def piece_text(tokenizer, i: int) -> str:
    """The text a token adds inside a line (SentencePiece's "▁" as a space, a byte piece as its byte)."""
    return _text_of_piece(tokenizer.id_to_piece(i))


def _text_of_piece(piece: str) -> str:
    byte = _BYTE_PIECE.fullmatch(piece) if piece.startswith("<0x") else None
    return chr(int(byte.group(1), 16)) if byte else piece.replace("▁", " ")


def piece_texts(tokenizer) -> Iterator[str]:
    """`piece_text` of every id, in id order (one call into the tokenizer for all pieces)."""
    return map(_text_of_piece, tokenizer.pieces())


@dataclasses.dataclass(frozen=True)
class VocabularyTables:
    identifier_continuing: np.ndarray  # [V] bool: the text starts with a letter, digit or '_'
    blank_led: dict[str, np.ndarray]  # leading blanks (spaces, tabs) -> the ids of the tokens they lead

    def starting_with(self, blanks: str) -> np.ndarray:
        """The ids of the tokens whose text begins with `blanks`."""
        parts = [ids for lead, ids in self.blank_led.items() if lead.startswith(blanks)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int32)


@functools.lru_cache(maxsize=4)
def tables(tokenizer) -> VocabularyTables:
    """The tables of `tokenizer`'s vocabulary, computed once (~0.3 s for Gemma 3: the engine's warm-up
    does it before a request needs it). Never true for <bos> and <eos>."""
    continuing = np.zeros(tokenizer.vocab_size, bool)
    blank_led: dict[str, list[int]] = {}
    for i, text in enumerate(piece_texts(tokenizer)):
        first = text[:1]
        if first.isalnum() or first == "_":
            continuing[i] = True
        elif first in _BLANKS:
            blank_led.setdefault(text[:len(text) - len(text.lstrip(" \t"))], []).append(i)
    specials = {tokenizer.bos_id, tokenizer.eos_id}
    for i in specials:
        continuing[i] = False
    return VocabularyTables(continuing, {lead: np.array([i for i in ids if i not in specials], np.int32)
                                         for lead, ids in blank_led.items()})


class WordBeginnings:
    """The tokens that begin a word, by their text: one UTF-8 blob, sorted, with offsets and ids. The tokens
    whose text begins with a given text are a contiguous run, found by binary search (UTF-8 keeps the order
    of code points, and never has the byte 0xFF)."""

    def __init__(self, texts: dict[int, str]):
        ids = list(texts)
        keys = [texts[i].encode() for i in ids]
        order = sorted(range(len(keys)), key=keys.__getitem__)
        self._blob = b"".join([keys[k] for k in order])
        self._offsets = np.zeros(len(keys) + 1, np.int32)
        np.cumsum(np.array([len(key) for key in keys], np.int32)[order], out=self._offsets[1:])
        self._ids = np.array(ids, np.int32)[order]

    def _key(self, k: int) -> bytes:
        return self._blob[self._offsets[k]:self._offsets[k + 1]]

    def starting_with(self, text: str) -> np.ndarray:
        """The ids of the tokens whose text begins with `text` (a part of a word: `ret`, ` ret`)."""
        start, rows = text.encode(), range(len(self._ids))
        low = bisect.bisect_left(rows, start, key=self._key)
        high = bisect.bisect_left(rows, start + b"\xff", lo=low, key=self._key)
        return self._ids[low:high]


def begins_word(text: str) -> bool:
    """Whether a token's text begins a word: a letter, digit or '_', after at most one space."""
    first = text[1:2] if text[:1] == " " else text[:1]
    return first.isalnum() or first == "_"


@functools.lru_cache(maxsize=4)
def word_beginnings(tokenizer) -> WordBeginnings:
    """The tokens of `tokenizer` that begin a word, read by token healing inside a word. Built at the first
    request with the cursor in a word (~0.6 s for Gemma 3 on a quiet core), not in the warm-up: there it
    would hold the GIL while the first keystrokes' requests run. Never <bos> or <eos>."""
    specials = {tokenizer.bos_id, tokenizer.eos_id}
    return WordBeginnings({i: text for i, text in enumerate(piece_texts(tokenizer))
                           if begins_word(text) and i not in specials})
