"""What each token writes, and the per-token tables that constrained decoding and token healing read.

The tables are computed in one pass over the vocabulary's texts and kept; the texts are not. For Gemma 3's
262 144 pieces the texts are that many Python strings (~18 MB, and SentencePiece's pieces as many
again), where the tables take ~0.8 MB: a [V] bool array and the ids of the blank-led tokens grouped by
their leading blanks (137 574 ids under 62 distinct leads).
"""

from __future__ import annotations

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
