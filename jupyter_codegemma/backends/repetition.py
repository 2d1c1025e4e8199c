"""Runaway text: a small model that has lost the thread repeats itself until the token limit. Found
while the answer streams, so generation stops there and the answer ends before the first repeat:

- a block of lines written again (blank lines aside): the same 2-8 lines twice in a row, or one line
  three times; or, anywhere later in the answer, a copy of 2 consecutive lines that both say
  something (`substantial`: not `else:`, `plt.show()`, `return x`, a bracket or a loop header, which
  good code repeats);
- a sentence written again (explanations): a sentence of 20 characters or more that the answer has
  already said, or an unindented line of words (`prose`) written again, in a code block or not (a
  comment of 6 words or more counts as a line that says something);
- with `functions` (`%%codegemma`: one request's code), a function that writes 2 lines of an earlier
  function of the same class or module again, one of them saying something: the model writing
  `read_csv`, `read_csv_files`, `read_csv_files_by_path` with one body until the token limit. The
  answer ends before the new function's `def` (its decorators and comments go with it). Good code
  does this too (`__lt__` and `__le__`): of 1 597 runs of consecutive standard-library functions
  (up to 60 lines each) it cuts 271, so editor suggestions, explanations and chat leave it off;
- a run of one short piece on a line (`0000…`, `1, 1, 1, …`): at least 12 repeats and 24 characters of
  a piece with a letter or digit in it (a written-out `[0, 0, 0, 0]` or `0xFFFFFFFF` is shorter), or
  one punctuation piece running 40 characters past a ruler's length.

`RunawayScan` keeps what it has judged between the pieces of one stream, so each piece costs time in
proportion to the new text: complete lines are judged once, sentences once they end, and runs only
near the end of the line being written. `cut_runaway(text)` judges a whole text; `stop_runaway(shape)`
wraps a shape of base.shaped_stream so that every answer stops at its first repeat.
"""

from __future__ import annotations

import re
from typing import Callable

MAX_BLOCK_LINES = 8
_SHORT_RUN = re.compile(r"(.{1,8}?)\1{11,}")  # a piece and at least 11 more of it
MIN_RUN_CHARS = 24
RULER = 80  # "=" * 80 and "-" * 80 are rulers, not runaways
# A run not yet long enough to judge is shorter than this (a punctuation piece of up to 8 characters
# judged at RULER + 40), so a run that the new text may complete started within it.
_RUN_REACH = 2 * (RULER + 40 + 8)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MIN_SENTENCE = 20
_CHECK_TAIL = 32  # characters compared to tell a grown text from a changed one

# Lines that good code writes again and again, so two of them in a row are no sign of a copy: short
# lines (`else:`, `i += 1`, `)`), a header of a generic block (`for i in range(n):`, `try:`, `except
# ValueError:`, `with open(p) as f:`), a call without arguments (`plt.show()`, `plt.tight_layout()`), a
# branch's end that names one thing (`return result`, `raise`, `break`), and a piece of a statement
# wrapped over lines (`raise TypeError(`, `'a': [1, 2],`, `)`): the same opening and message appear
# in several branches. A `def` or `class` header names one thing: written twice, it is a copy.
# Checked on code that is not runaway (tests/test_repetition.py): HumanEval's solutions, the
# standard library's functions and classes of 5 to 60 lines, the notebooks' cells.
MIN_SUBSTANTIAL = 12
_GENERIC_HEADER = re.compile(r"(else|try|finally|(el)?if\b.*|for\b.*|while\b.*|with\b.*|except\b.*|case\b.*"
                             r"|match\b.*)\s*:(\s*#.*)?")
_BARE_CALL = re.compile(r"[\w.]+\(\)[;,]?")
_BRANCH_END = re.compile(r"(return|raise|yield|break|continue|pass)\b\s*[\w.]*")
_WRAPPED = re.compile(r"^[)\]}]|[(\[{,\\]$")
# A sentence: a capitalised word and at least 5 more, words and the punctuation of prose only (no
# brackets, `=`, dots inside a name), so no line of code is one.
_PROSE_LINE = re.compile(r"[A-Z][a-z']*(,?\s+[\w'`\"-]+[,;:]?){5,}[.!?:]?")
MIN_PROSE_LINE = 30
_DEF = re.compile(r"\s*(async\s+)?def\s")
_FENCE = "```"
_FENCE_OPENING = re.compile(r"```\w[\w+.#-]*")  # with a language: not a closing fence


def substantial(line: str) -> bool:
    """Whether a line says enough that it and the next, written again later, are a copy."""
    text = line.strip()
    if text.startswith("#") and len(text) >= MIN_PROSE_LINE and len(text.split()) >= 6:
        return True  # a comment that says what the next lines do (or a line of code put aside)
    if len(text) < MIN_SUBSTANTIAL or text.startswith(("#", _FENCE)) or not re.search(r"\w", text):
        return False
    return not any(pattern.fullmatch(text) for pattern in (_GENERIC_HEADER, _BARE_CALL, _BRANCH_END)) \
        and not _WRAPPED.search(text)


def prose(line: str) -> bool:
    """Whether a line is a sentence of words rather than code: said twice in one answer (inside a code
    block or not), it is a copy."""
    text = line.strip()
    return len(text) >= MIN_PROSE_LINE and bool(_PROSE_LINE.fullmatch(text))


class RunawayScan:
    """The first repeat of one growing text (a stream's answer). `feed(text)` with the text so far,
    each time longer, returns (text up to the first repeat, whether it repeated). A text that is not
    the last one grown (its last characters changed) is judged from the start again."""

    def __init__(self, functions: bool = False) -> None:
        # `functions`: a function whose lines copy an earlier sibling's ends the answer too (for
        # `%%codegemma`, one request's code; not for editor suggestions, see the module's docstring).
        self._functions = functions
        self._reset()

    def _reset(self) -> None:
        self._length = 0  # of the text judged so far
        self._tail = ""  # its last characters
        self._cut: int | None = None  # where the answer ends, once it repeated
        self._line_start = 0  # offset of the first line not yet judged (the one being written)
        self._body: list[str] = []  # the complete non-blank lines, trailing spaces aside
        self._starts: list[int] = []  # offset of each line of _body
        self._ends: list[int] = []  # and of its end (its "\n")
        self._pairs: dict[tuple[str, str], int] = {}  # two substantial lines in a row: where first seen
        self._prose_lines: set[str] = set()  # lines that are sentences
        self._within: list[int] = []  # for each line of _body, the line it is indented under (-1: none)
        self._open: list[int] = []  # the lines whose block is open at the newest line, least indented first
        self._run_from = 0  # where runs are looked for
        self._sentence_start = 0  # offset of the sentence being written
        self._end_from = 0  # where the end of a sentence is looked for
        self._fence_from = 0  # and a code fence
        self._sentences: set[str] = set()
        self._fenced = False  # code is judged by its lines, not as sentences

    def feed(self, text: str) -> tuple[str, bool]:
        if len(text) < self._length or text[max(self._length - _CHECK_TAIL, 0):self._length] != self._tail:
            self._reset()
        if self._cut is None:
            cuts = [cut for cut in (self._runs(text), self._lines(text), self._prose(text)) if cut is not None]
            if cuts:
                self._cut = min(cuts)
        self._length, self._tail = len(text), text[max(len(text) - _CHECK_TAIL, 0):]
        if self._cut is not None:
            return text[:self._cut], True
        return text, False

    # --- runs of one short piece, judged as the line grows -------------------------------------------

    def _runs(self, text: str) -> int | None:
        found = None
        for match in _SHORT_RUN.finditer(text, self._run_from):
            piece = match.group(1)
            if "\n" in piece or not piece.strip():
                continue  # blank lines and indentation
            if not re.search(r"\w", piece):
                if len(match.group(0)) < RULER + 40:
                    continue  # a ruler of "=" or "-"
            elif len(match.group(0)) < MIN_RUN_CHARS:
                continue
            found = _trimmed(text, match.start() + len(piece), " ,;")
            break
        # A run cannot cross a line, and one still too short to judge is near the end.
        self._run_from = max(self._run_from, text.rfind("\n", self._run_from) + 1, len(text) - _RUN_REACH)
        return found

    # --- blocks of lines, judged once each line is complete ------------------------------------------

    def _lines(self, text: str) -> int | None:
        while (end := text.find("\n", self._line_start)) >= 0:
            start, self._line_start = self._line_start, end + 1
            line = text[start:end].rstrip()
            if not line.strip():
                continue
            self._add(line, start, end)
            cut = self._adjacent_copy()
            if cut is None:
                cut = self._earlier_copy()
            if cut is None:
                cut = self._sentence_copy()
            if cut is not None:
                return _trimmed(text, cut, "\n")
        return None

    def _add(self, line: str, start: int, end: int) -> None:
        indent = _indent(line)
        while self._open and _indent(self._body[self._open[-1]]) >= indent:
            self._open.pop()
        self._within.append(self._open[-1] if self._open else -1)
        self._open.append(len(self._body))
        self._body.append(line)
        self._starts.append(start)
        self._ends.append(end)

    def _adjacent_copy(self) -> int | None:
        """The end of the first copy, if the newest lines repeat the block just before them."""
        body = self._body
        for size in range(1, MAX_BLOCK_LINES + 1):
            copies = 3 if size == 1 else 2
            if len(body) < size * copies:
                break
            block = body[-size:]
            if sum(len(line.strip()) for line in block) < 8:
                continue  # `)`, `}` and `pass` repeat in good code
            if all(body[-size * k - size:len(body) - size * k] == block for k in range(1, copies)):
                return self._ends[len(body) - size * (copies - 1) - 1]
        return None

    def _earlier_copy(self) -> int | None:
        """The start of the copy, if the newest two lines say what two lines said earlier."""
        if len(self._body) < 2:
            return None
        pair = (self._body[-2], self._body[-1])
        says = [substantial(line) for line in pair]
        if not any(says):
            return None
        copy = len(self._body) - 2
        first = self._pairs.setdefault(pair, copy)
        if copy - first < 2:
            return None  # the original itself, or overlapping it
        # Under the same line: good code repeats lines in the branches of an `if` and in the methods
        # of two classes, a runaway in the same place.
        if all(says) and self._within[copy] == self._within[first]:
            # A code block the copy was opening goes too (an explanation that quotes its code again).
            opening = copy >= 1 and _FENCE_OPENING.fullmatch(self._body[copy - 1].strip())
            return self._starts[copy - 1 if opening else copy]
        if not self._functions:
            return None
        # In the next function of a row (`def read_csv`, `def read_json`, … with the same body lines): the
        # model writes variations of one function until the token limit. The new function goes whole.
        original, new = self._function_of(first), self._function_of(copy)
        if original is not None and new is not None and original < new and first < new \
                and _indent(self._body[original]) == _indent(self._body[new]) \
                and self._within[original] == self._within[new]:
            return self._starts[self._head_of(new)]
        return None

    def _function_of(self, line: int) -> int | None:
        """The `def` line that the line is in, nearest first."""
        while (line := self._within[line]) >= 0:
            if _DEF.match(self._body[line]):
                return line
        return None

    def _head_of(self, definition: int) -> int:
        """The first of a definition's lines: its decorators and the comment lines just above it."""
        indent = _indent(self._body[definition])
        while definition > 0 and _indent(self._body[definition - 1]) == indent \
                and self._body[definition - 1].lstrip().startswith(("@", "#")):
            definition -= 1
        return definition

    def _sentence_copy(self) -> int | None:
        """The start of the newest line, if it is a sentence the answer has written as a line before
        (an explanation that writes its sentence again inside a new code block takes the block along)."""
        line = self._body[-1]
        if _indent(line) or not prose(line):
            return None  # an indented sentence is a docstring's: sibling functions share those
        if line not in self._prose_lines:
            self._prose_lines.add(line)
            return None
        copy = len(self._body) - 1
        opening = copy >= 1 and self._body[copy - 1].strip().startswith(_FENCE)
        return self._starts[copy - 1 if opening else copy]

    # --- sentences, judged once they end (prose: not once the answer holds code) ----------------------

    def _prose(self, text: str) -> int | None:
        if not self._fenced and text.find(_FENCE, self._fence_from) >= 0:
            self._fenced = True
        self._fence_from = max(len(text) - len(_FENCE) + 1, 0)
        if self._fenced:
            return None
        resume = len(text)
        for match in _SENTENCE_END.finditer(text, self._end_from):
            if match.end() == len(text):
                resume = match.start()  # the last may be unfinished: its spaces may grow
                break
            start, self._sentence_start = self._sentence_start, match.end()
            sentence = text[start:match.start()].strip()
            key = sentence.lower()
            if len(key) >= MIN_SENTENCE and key in self._sentences:
                return _trimmed(text, start, " \t\n")
            self._sentences.add(key)
        self._end_from = resume
        return None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _trimmed(text: str, end: int, chars: str) -> int:
    """`end`, moved back over any of `chars` before it."""
    while end > 0 and text[end - 1] in chars:
        end -= 1
    return end


def cut_runaway(text: str, functions: bool = False) -> tuple[str, bool]:
    """(text up to the first repeat, whether it repeated). Only whole lines are judged for block
    repeats (the line being written may still change); character runs are judged as they grow."""
    return RunawayScan(functions).feed(text)


def stop_runaway(shape: Callable[[str, bool], tuple[str, bool]],
                 functions: bool = False) -> Callable[[str, bool], tuple[str, bool]]:
    """`shape`, applied to the text up to its first repeat; complete once it repeats. The wrapped
    shape keeps a RunawayScan: use one per stream."""
    scan = RunawayScan(functions)

    def shape_without_repeats(raw: str, final: bool) -> tuple[str, bool]:
        cut, repeated = scan.feed(raw)
        text, complete = shape(cut, final or repeated)
        return text, complete or repeated

    return shape_without_repeats
