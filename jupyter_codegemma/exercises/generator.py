"""Turn correct code into a syntax-fix exercise: inject one error of a chosen category, seeded.

    broken = inject_error(source, "missing_colon", seed=7)      # same source, category, seed -> same output

Every candidate edit of the category is listed from the source's tokens (remove a ':' ending a block
header, drop a closing bracket, swap two letters of a keyword, ...), the candidates are shuffled with
the seed, and the first whose result `check_code` files under the requested category wins — so the
output is guaranteed to fail to parse with that category, or `NoSiteError` says the code has no place
for such an error.
"""

from __future__ import annotations

import io
import keyword
import random
import re
import tokenize
from typing import Callable, Iterator

from .checker import CATEGORIES, check_code

__all__ = ["GENERATED_CATEGORIES", "NoSiteError", "categories_for", "inject_error"]


class NoSiteError(ValueError):
    """The code has no place where an error of the requested category can be injected."""


_Edit = Callable[[], str]  # a candidate: returns the mutated source


def _tokens(source: str) -> list[tokenize.TokenInfo]:
    return list(tokenize.generate_tokens(io.StringIO(source).readline))


def _replace(lines: list[str], row: int, start: int, end: int, text: str) -> Callable[[], str]:
    """An edit of line `row` (1-based), columns [start, end) -> text."""
    def apply() -> str:
        out = list(lines)
        line = out[row - 1]
        out[row - 1] = line[:start] + text + line[end:]
        return "".join(out)
    return apply


def _is_operand_end(t) -> bool:
    return (t.type == tokenize.NAME and not keyword.iskeyword(t.string)) or t.type == tokenize.NUMBER \
        or t.string in (")", "]")


def _is_operand_start(t) -> bool:
    return (t.type == tokenize.NAME and not keyword.iskeyword(t.string)) or t.type == tokenize.NUMBER \
        or t.string == "("


def _logical_lines(toks):
    """Token lists per logical line (between NEWLINE tokens), without NL/COMMENT/INDENT/DEDENT."""
    line: list = []
    for t in toks:
        if t.type in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        if t.type == tokenize.NEWLINE:
            if line:
                yield line
            line = []
            continue
        line.append(t)
    if line:
        yield line


def _misspellings(word: str) -> Iterator[str]:
    for i in range(len(word) - 1):  # swap two neighbours: retrun, esle, improt
        if word[i] != word[i + 1]:
            yield word[:i] + word[i + 1] + word[i] + word[i + 2:]
    for i in range(1, len(word)):  # drop a letter: retun, whle
        yield word[:i] + word[i + 1:]


def _candidates(source: str, category: str) -> Iterator[_Edit]:
    lines = source.splitlines(keepends=True)
    toks = _tokens(source)
    logical = list(_logical_lines(toks))

    if category == "unbalanced_brackets":
        for t in toks:
            if t.type == tokenize.OP and t.string in "()[]{}":
                yield _replace(lines, t.start[0], t.start[1], t.end[1], "")
    elif category == "unterminated_string":
        for t in toks:
            if t.type == tokenize.STRING and t.start[0] == t.end[0]:
                body = t.string.lstrip("rbuRBUfF")
                if body[:3] in ('"""', "'''") or len(body) < 2:
                    continue
                yield _replace(lines, t.end[0], t.end[1] - 1, t.end[1], "")  # drop the closing quote
        for ll in logical:  # unquoted text: a string literal of several words without its quotes
            for t in ll:
                if t.type == tokenize.STRING and t.start[0] == t.end[0] and t.string[:1] in "'\"":
                    inner = t.string[1:-1]
                    if re.fullmatch(r"[A-Za-z]+( [A-Za-z]+){2,}", inner or ""):
                        yield _replace(lines, t.start[0], t.start[1], t.end[1], inner)
    elif category == "missing_colon":
        for ll in logical:
            if ll[0].string in ("if", "elif", "else", "for", "while", "def", "class", "try", "except", "finally",
                                "with", "async") and ll[-1].string == ":":
                t = ll[-1]
                yield _replace(lines, t.start[0], t.start[1], t.end[1], "")
        for ll in logical:  # one-line blocks: `if x: return y`
            depth = 0
            for t in ll:
                depth += t.string in "([{" and t.type == tokenize.OP
                depth -= t.string in ")]}" and t.type == tokenize.OP
                if t.string == ":" and depth == 0 and ll[0].string in ("if", "elif", "else", "for", "while", "def"):
                    yield _replace(lines, t.start[0], t.start[1], t.end[1], "")
                    break
    elif category == "indentation":
        levels = [0]  # the indentation stack, as the tokenizer keeps it
        for t in toks:
            if t.type == tokenize.DEDENT:
                levels.pop()
            elif t.type == tokenize.INDENT:
                row, width, outer = t.start[0], len(t.string), levels[-1]
                levels.append(width)
                yield _replace(lines, row, 0, width, lines[row - 1][:outer])  # the block body is not indented
        for ll in logical:  # a line indented more than its neighbours, or less but not to a block's level
            first = ll[0]
            row = first.start[0]
            indent = first.start[1]
            yield _replace(lines, row, 0, indent, " " * (indent + 2))
            if indent >= 4:
                yield _replace(lines, row, 0, indent, " " * (indent - 2))
    elif category == "missing_comma":
        for t in toks:
            if t.type == tokenize.OP and t.string == ",":
                yield _replace(lines, t.start[0], t.start[1], t.end[1], "")
    elif category == "assign_for_compare":
        for ll in logical:
            if ll[0].string in ("if", "elif", "while", "assert") or any(t.string == "if" for t in ll):
                for t in ll:
                    if t.type == tokenize.OP and t.string in ("==", "!="):
                        yield _replace(lines, t.start[0], t.start[1], t.end[1], "=")
                for a, b in zip(ll, ll[1:]):
                    if a.string == "is" and b.string != "not":
                        yield _replace(lines, a.start[0], a.start[1], a.end[1], "=")
    elif category == "keyword":
        for ll in logical:
            t = ll[0]
            if t.type == tokenize.NAME and keyword.iskeyword(t.string) and len(t.string) >= 3:
                for wrong in _misspellings(t.string):
                    if not keyword.iskeyword(wrong):
                        yield _replace(lines, t.start[0], t.start[1], t.end[1], wrong)
            if t.string == "elif":
                yield _replace(lines, t.start[0], t.start[1], t.end[1], "else if")
    elif category == "python2_print":
        has_print = False
        for ll in logical:
            if len(ll) >= 3 and ll[0].string == "print" and ll[1].string == "(" and ll[-1].string == ")":
                a, b = ll[1], ll[-1]
                if a.start[0] == b.end[0]:
                    has_print = True

                    def apply(a=a, b=b):
                        out = list(lines)
                        line = out[a.start[0] - 1]
                        out[a.start[0] - 1] = line[:a.start[1]] + " " + line[a.end[1]:b.start[1]] + line[b.end[1]:]
                        return "".join(out)
                    yield apply
        for ll in ([] if has_print else logical):  # no print to break: add a Python 2 debugging print
            first = ll[0]
            names = [t.string for t in ll if t.type == tokenize.NAME and not keyword.iskeyword(t.string)]
            if names and first.string not in ("else", "elif", "except", "finally", "@"):
                indent = lines[first.start[0] - 1][: first.start[1]]
                if indent.strip():
                    continue
                row = first.start[0]
                yield _replace(lines, row, 0, len(indent), f"{indent}print \"{names[0]}:\", {names[0]}\n{indent}")
    elif category == "missing_operator":
        for a, op, b in zip(toks, toks[1:], toks[2:]):
            if op.type == tokenize.OP and op.string in ("+", "-", "*", "/", "//", "%", "**") \
                    and _is_operand_end(a) and _is_operand_start(b) and a.end[0] == b.start[0]:
                yield _replace(lines, op.start[0], a.end[1], b.start[1], " ")
    elif category == "stray_character":
        for t in toks:
            if t.type in (tokenize.NAME, tokenize.NUMBER) and t.start[1] > 0:
                for ch in ("$", "?", "`", "\u201c"):
                    yield _replace(lines, t.start[0], t.start[1], t.start[1], ch)
    elif category == "other":
        raise NoSiteError("'other' is not a category the generator injects; choose a specific one")


GENERATED_CATEGORIES = tuple(c for c in CATEGORIES if c != "other")


def inject_error(source: str, category: str, seed: int = 0) -> str:
    """`source` with one syntax error of `category`; deterministic per (source, category, seed)."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; expected one of {', '.join(GENERATED_CATEGORIES)}")
    if not source.endswith("\n"):
        source += "\n"
    result = check_code(source)
    if not result.ok:
        raise ValueError(f"the code must parse before an error is injected; line {result.line}: {result.message}")
    candidates = list(_candidates(source, category))
    random.Random(f"{seed}:{category}").shuffle(candidates)
    for edit in candidates:
        broken = edit()
        if check_code(broken).category == category:
            return broken
    raise NoSiteError(f"no place in this code for an error of category {category!r}")


def categories_for(source: str) -> list[str]:
    """The categories `inject_error` can produce for this code."""
    out = []
    for category in GENERATED_CATEGORIES:
        try:
            inject_error(source, category)
        except NoSiteError:
            continue
        out.append(category)
    return out
