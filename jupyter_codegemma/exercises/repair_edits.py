"""Candidate edits of broken Python: the one- or two-token changes that beginners' mistakes need.

The code does not parse, so Python's tokenizer cannot be trusted on it: each line is split by a small
forgiving lexer (an unterminated string runs to the end of its line, an unknown character is a token of
its own). Every edit is a whole new source text plus a short description of what it changes ("insert
':' after '25'") and a cost (1 for a single edit or one of the known beginner patterns, such as wrapping
a Python 2 print's arguments in parentheses; the search adds the costs of edits made one after another).
Nothing here compiles or runs anything: the search (repair.py) filters the candidates.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from typing import Iterator

__all__ = ["Edit", "Token", "edits_for_line", "lex_line", "program_edits"]

_TOKEN = re.compile(r"""
    (?P<comment>\#.*)
  | (?P<string>[rRbBuUfF]{0,2}(?:"(?:\\.|[^"\\])*"?|'(?:\\.|[^'\\])*'?))
  | (?P<name>[^\W\d]\w*)
  | (?P<number>(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?[jJ]?)
  | (?P<op>\*\*=?|//=?|==|!=|<=|>=|->|:=|<<=?|>>=?|[-+*/%&|^<>@]=?|[()\[\]{},:;.=~])
  | (?P<space>[ \t\f]+)
  | (?P<other>.)
""", re.VERBOSE)

# What beginners leave out (inserted between tokens) and where it goes relative to the gap.
_PUNCTUATION = (":", ",", ")", "]", "}", "(", "[", "{")
_OPERATORS = ("*", "+", "-", "/", "**", "%", "//")
_BRACKET_SWAPS = {"(": "[{", ")": "]}", "[": "({", "]": ")}", "{": "([", "}": ")]"}
_QUOTES = "'\"`\u2018\u2019\u201c\u201d\u00b4"
# Names a beginner misspells: the keywords, and the builtins of a first course.
_WORDS = tuple(sorted(set(keyword.kwlist) | {"print", "range", "len", "input", "int", "str", "float", "list",
                                             "dict", "sum", "max", "min", "abs", "round", "append", "self"}))


@dataclass(frozen=True)
class Token:
    kind: str  # comment | string | name | number | op | space | other
    text: str
    start: int  # column in the line
    end: int

    @property
    def closed_string(self) -> bool:
        body = self.text.lstrip("rRbBuUfF")
        return self.kind == "string" and len(body) >= 2 and body[-1] == body[0] and not body.endswith("\\" + body[0])


@dataclass(frozen=True)
class Edit:
    source: str  # the whole program after the edit
    what: str  # "line 2: insert ':' after '25'"
    cost: int = 1
    pattern: bool = False  # one of the known beginner patterns rather than one token inserted or changed
    row: int = -1  # the (first) line it changes, 0-based; -1: the whole program


def lex_line(line: str) -> list[Token]:
    return [Token(m.lastgroup, m.group(), m.start(), m.end()) for m in _TOKEN.finditer(line)]


def _distance(a: str, b: str) -> int:
    """Edit distance with swaps of neighbours counted as one (`esle` -> `else` is 1)."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def close_words(name: str) -> list[str]:
    """Keywords and first-course builtins within one edit of `name` (two for names of 5+ letters)."""
    if len(name) < 2 or keyword.iskeyword(name):
        return []
    reach = 2 if len(name) >= 5 else 1
    return [w for w in _WORDS if w != name and abs(len(w) - len(name)) <= reach and _distance(name, w) <= reach]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def edits_for_line(lines: list[str], row: int, names_once: set[str]) -> Iterator[Edit]:
    """Single edits of line `row` (0-based) of `lines` (without line ends)."""
    line = lines[row]
    toks = lex_line(line)
    code = [t for t in toks if t.kind not in ("space", "comment")]
    where = f"line {row + 1}"

    def put(new_line: str, what: str, pattern: bool = False) -> Edit:
        out = list(lines)
        out[row] = new_line
        return Edit("\n".join(out) + "\n", f"{where}: {what}", 1, pattern, row)

    # insertions in the gaps between tokens, after the last one and before the first
    for i, tok in enumerate(code):
        nxt = code[i + 1] if i + 1 < len(code) else None
        for p in _PUNCTUATION + ('"', "'"):
            if p in "([{'\"" and nxt is not None:  # openers go before the next token
                yield put(line[:nxt.start] + p + line[nxt.start:], f"insert {p!r} before {nxt.text!r}")
            if p not in "([{" or nxt is None:  # closers, ':' and ',' go right after this token
                yield put(line[:tok.end] + p + line[tok.end:], f"insert {p!r} after {tok.text!r}")
        if nxt is not None:  # a missing operator: `2x`, `price tax`
            for op in _OPERATORS:
                yield put(f"{line[:tok.end]} {op} {line[nxt.start:]}",
                          f"insert {op!r} between {tok.text!r} and {nxt.text!r}")
    for opener, closer in ("()", "[]"):  # `gradescore):` — the opener deleted between two names glued them
        if line.count(closer) > line.count(opener):
            for tok in code:
                for k in range(1, len(tok.text)) if tok.kind == "name" else ():
                    at = tok.start + k
                    yield put(line[:at] + opener + line[at:], f"insert {opener!r} inside {tok.text!r}")
    if code:
        first = code[0]
        for word in ("return ", "def "):
            yield put(line[:first.start] + word + line[first.start:], f"insert {word.strip()!r} at the start")
    # deletions and replacements of single tokens
    for i, tok in enumerate(code):
        if tok.kind in ("op", "other"):
            yield put(line[:tok.start] + line[tok.end:], f"delete {tok.text!r}")
        if tok.kind == "other" and not tok.text.isascii():
            yield put(line[:tok.start] + " " + line[tok.end:], f"replace the invisible character {tok.text!r} with a space")
        if tok.text == "=":
            yield put(line[:tok.start] + "==" + line[tok.end:], "replace '=' with '=='")
        if tok.text in (";", ".", ",") and i == len(code) - 1:
            yield put(line[:tok.start] + ":" + line[tok.end:], f"replace {tok.text!r} with ':'")
        for other in _BRACKET_SWAPS.get(tok.text, ""):
            yield put(line[:tok.start] + other + line[tok.end:], f"replace {tok.text!r} with {other!r}")
        if tok.kind == "name" and (tok.text in names_once or i == 0):
            for word in close_words(tok.text):
                yield put(line[:tok.start] + word + line[tok.end:], f"replace {tok.text!r} with {word!r}")
        if tok.kind == "string" and not tok.closed_string:
            yield from _close_string(line, tok, code[i + 1:], put)
    yield from _line_patterns(line, code, put)
    if len(code) >= 2 and code[0].text == "print" and code[1].text != "(":
        # a Python 2 debugging print that cannot simply get its parentheses (it prints a name not yet
        # defined): the line goes; two edits' worth, so the parentheses win whenever they pass
        yield Edit("\n".join(lines[:row] + lines[row + 1:]) + "\n", f"{where}: delete the Python 2 print", 2,
                   True, row)


def _close_string(line, tok, after, put) -> Iterator[Edit]:
    quote = tok.text.lstrip("rRbBuUfF")[0]
    body = line[tok.start:].rstrip()
    stripped = body.rstrip(")]}:,")  # close before trailing brackets: print("hello) -> print("hello")
    for end in {len(body), len(stripped)}:
        col = tok.start + end
        yield put(line[:col] + quote + line[col:], f"close the string with {quote}", True)
    if len(tok.text) >= 2 and tok.text[-1] in _QUOTES:  # 'Paris" : the closing quote of the other kind
        yield put(line[:tok.end - 1] + quote + line[tok.end:], f"end the string with {quote}, as it starts", True)


def _line_patterns(line, code, put) -> Iterator[Edit]:
    """The known beginner mistakes of a whole line."""
    indent = _indent(line)
    if len(code) >= 2 and code[0].text in ("print", "exec") and code[1].text != "(":
        rest = line[code[1].start:].rstrip()
        rest = rest[:-1].rstrip() if rest.endswith(",") else rest
        yield put(f"{line[:code[0].end]}({rest})", f"put the arguments of {code[0].text} in parentheses", True)
    text = line.strip()
    m = re.match(r"else\s+if\b", text)
    if m:
        yield put(indent + "elif" + text[m.end():], "replace 'else if' with 'elif'", True)
    quotes = [i for i, ch in enumerate(line) if ch in _QUOTES]
    for a in range(len(quotes)):  # a pair of quote marks of the wrong kind: `x`, “x”, 'It's'
        for b in range(a + 1, len(quotes)):
            i, j = quotes[a], quotes[b]
            for q in "\"'":
                if line[i] == q and line[j] == q:
                    continue
                if q in line[i + 1:j]:
                    continue
                yield put(line[:i] + q + line[i + 1:j] + q + line[j + 1:], f"use {q} around {line[i + 1:j]!r}", True)
    run: list[Token] = []
    for tok in code + [None]:  # several bare words side by side: text without its quotes
        if tok is not None and tok.kind == "name":
            run.append(tok)
            continue
        if len(run) >= 2:
            a, b = run[0].start, run[-1].end
            yield put(f'{line[:a]}"{line[a:b]}"{line[b:]}', f"put quotes around {line[a:b]!r}", True)
        run = []


def _block_end(lines: list[str], row: int) -> int:
    """The row after the block that line `row` starts (its deeper-indented lines, blank lines inside)."""
    width = len(_indent(lines[row]))
    end = row + 1
    while end < len(lines) and (not lines[end].strip() or len(_indent(lines[end])) > width):
        end += 1
    while end > row + 1 and not lines[end - 1].strip():
        end -= 1
    return end


def program_edits(lines: list[str], rows: list[int]) -> Iterator[Edit]:
    """Edits of the lines `rows` and those that need the whole program: indentation, a keyword used as a
    name, an elif after its else."""
    names: dict[str, int] = {}
    for line in lines:
        for tok in lex_line(line):
            if tok.kind == "name":
                names[tok.text] = names.get(tok.text, 0) + 1
    once = {n for n, k in names.items() if k == 1}
    widths = sorted({len(_indent(x)) for x in lines if x.strip()} | {0, 4, 8})
    for row in rows:
        if not lines[row].strip():
            continue
        yield from edits_for_line(lines, row, once)
        old = len(_indent(lines[row]))
        end = _block_end(lines, row)
        for width in widths:
            if width == old:
                continue
            delta = width - old
            out = list(lines)
            out[row] = " " * width + lines[row].lstrip(" \t")
            yield Edit("\n".join(out) + "\n", f"line {row + 1}: indent by {width} spaces", row=row)
            if end > row + 1:
                for r in range(row + 1, end):
                    if out[r].strip():
                        out[r] = " " * max(len(_indent(lines[r])) + delta, 0) + lines[r].lstrip(" \t")
                yield Edit("\n".join(out) + "\n", f"lines {row + 1}-{end}: move the block to {width} spaces",
                           row=row)
    for kw in sorted(n for n in names if keyword.iskeyword(n) and n not in ("True", "False", "None")):
        yield from _rename_keyword(lines, kw)
    yield from _swap_else_elif(lines)


def _rename_keyword(lines: list[str], kw: str) -> Iterator[Edit]:
    """`class = "7B"`: a keyword used as a name, renamed everywhere it appears outside strings."""
    out = []
    for line in lines:
        toks = lex_line(line)
        out.append("".join(t.text + ("_" if t.kind == "name" and t.text == kw else "") for t in toks))
    yield Edit("\n".join(out) + "\n", f"rename {kw!r}, a keyword, to {kw + '_'!r} everywhere",
               pattern=True)


def _swap_else_elif(lines: list[str]) -> Iterator[Edit]:
    for row, line in enumerate(lines):
        if not re.match(r"\s*else\s*:", line):
            continue
        end = _block_end(lines, row)
        if end < len(lines) and re.match(r"\s*elif\b", lines[end]) and _indent(lines[end]) == _indent(line):
            after = _block_end(lines, end)
            out = lines[:row] + lines[end:after] + lines[row:end] + lines[after:]
            yield Edit("\n".join(out) + "\n", f"line {row + 1}: move the 'elif' before the 'else'",
                       pattern=True, row=row)
