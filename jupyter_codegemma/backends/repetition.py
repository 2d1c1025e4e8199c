"""Runaway text: a small model that has lost the thread repeats itself until the token limit. Found
while the answer streams, so generation stops there and the answer ends before the first repeat:

- a block of lines written again (blank lines aside): the same 2-8 lines twice, or one line three times;
- a sentence written again (explanations): a sentence of 20 characters or more that the answer has
  already said;
- a run of one short piece on a line (`0000…`, `1, 1, 1, …`): at least 12 repeats and 24 characters of
  a piece with a letter or digit in it (a written-out `[0, 0, 0, 0]` or `0xFFFFFFFF` is shorter), or
  one punctuation piece running 40 characters past a ruler's length.

`cut_runaway(text)` returns the text up to the repeat and whether there was one; `stop_runaway(shape)`
wraps a shape of base.shaped_stream so that every answer stops at its first repeat.
"""

from __future__ import annotations

import re
from typing import Callable

MAX_BLOCK_LINES = 8
_SHORT_RUN = re.compile(r"(.{1,8}?)\1{11,}")  # a piece and at least 11 more of it
MIN_RUN_CHARS = 24
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
RULER = 80  # "=" * 80 and "-" * 80 are rulers, not runaways


def cut_runaway(text: str) -> tuple[str, bool]:
    """(text up to the first repeat, whether it repeated). Only whole lines are judged for block
    repeats (the line being written may still change); character runs are judged as they grow."""
    run = _first_run(text)
    if run is not None:
        return text[:run].rstrip(" ,;"), True
    lines = text.split("\n")
    complete = lines[:-1]  # the last line is still being written
    # The first place a repeat is complete (text may arrive in one piece, not line by line).
    end = next((e for n in range(1, len(complete) + 1) if (e := _block_repeat_end(complete[:n])) is not None),
               None)
    if end is not None:
        kept = "\n".join(complete[:end]).rstrip("\n")
        return kept, True
    sentence = _sentence_repeat(text)
    if sentence is not None:
        return text[:sentence].rstrip(), True
    return text, False


def stop_runaway(shape: Callable[[str, bool], tuple[str, bool]]) -> Callable[[str, bool], tuple[str, bool]]:
    """`shape`, applied to the text up to its first repeat; complete once it repeats."""

    def shape_without_repeats(raw: str, final: bool) -> tuple[str, bool]:
        cut, repeated = cut_runaway(raw)
        text, complete = shape(cut, final or repeated)
        return text, complete or repeated

    return shape_without_repeats


def _first_run(text: str) -> int | None:
    """Where a run of one short piece starts repeating (after its first copy), if there is one."""
    for match in _SHORT_RUN.finditer(text):
        piece = match.group(1)
        if "\n" in piece or not piece.strip():
            continue  # blank lines and indentation
        if not re.search(r"\w", piece):
            if len(match.group(0)) < RULER + 40:
                continue  # a ruler of "=" or "-"
        elif len(match.group(0)) < MIN_RUN_CHARS:
            continue
        return match.start() + len(piece)
    return None


def _block_repeat_end(lines: list[str]) -> int | None:
    """The index after the first copy of a block whose copy follows it, if the newest lines repeat one."""
    body = [(i, line.rstrip()) for i, line in enumerate(lines) if line.strip()]
    text = [line for _, line in body]
    for size in range(1, MAX_BLOCK_LINES + 1):
        copies = 3 if size == 1 else 2
        if len(text) < size * copies:
            break
        block = text[-size:]
        if sum(len(line.strip()) for line in block) < 8:
            continue  # `)`, `}` and `pass` repeat in good code
        if all(text[-size * k - size:len(text) - size * k] == block for k in range(1, copies)):
            first_copy_end = body[len(text) - size * (copies - 1) - 1][0]
            return first_copy_end + 1
    return None


def _sentence_repeat(text: str) -> int | None:
    """Where a sentence said before starts again, in prose (not inside code)."""
    if "```" in text:
        return None  # code repeats by lines; prose with code in it is judged by its lines too
    sentences = [s for s in _SENTENCE_END.split(text) if s]
    seen: set[str] = set()
    for sentence in sentences[:-1]:  # the last may be unfinished
        key = sentence.strip().lower()
        if len(key) >= 20 and key in seen:
            return _find_nth(text, sentence.strip())
        seen.add(key)
    return None


def _find_nth(text: str, sentence: str) -> int:
    """The start of the second time `sentence` appears."""
    first = text.find(sentence)
    return text.find(sentence, first + len(sentence))
