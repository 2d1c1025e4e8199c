"""What of a cell is parsed around the cursor, and how: the top-level statement the cursor is in
(`window`), with IPython syntax read as Python, compiled to a tree or to its first error (`parse`).
Shared by the suggestion check (candidates.py) and the reading of the line still to write
(line_to_write.py). Pure Python (ast), no JAX."""

from __future__ import annotations

import ast
import dataclasses
import re
import warnings

# Errors that only say the text stops too early.
_INCOMPLETE = ("was never closed", "unterminated triple-quoted", "unexpected EOF", "expected an indented block")
_TOP_LEVEL_START = re.compile(r"[A-Za-z_@]")
_CONTINUES = re.compile(r"(else|elif|except|finally)\b")  # a clause of the statement above


@dataclasses.dataclass(frozen=True)
class Parsed:
    """A text's parse: ok, or the first error's character offset and message."""

    ok: bool
    offset: int = 0
    message: str = ""
    incomplete: bool = False  # the error only says the text ends too early
    tree: ast.Module | None = None  # the parsed text, when it parses


def window(prefix: str, suffix: str) -> tuple[str, str]:
    """The end of `prefix` and the start of `suffix` that are parsed: the top-level statement the cursor
    is in, from the last line before the cursor's that starts one to the first line after it that starts
    the next. Python parses each top-level statement alone, and the notebook's cells above can be long:
    the check runs on every keystroke's suggestion."""
    lines = prefix.split("\n")
    starts = [i for i in range(len(lines) - 2, -1, -1) if _starts_statement(lines, i)]
    if starts:
        prefix = "\n".join(lines[starts[0]:])
    lines = suffix.split("\n")
    ends = [i for i in range(1, len(lines)) if _starts_statement(lines, i)]
    if ends:
        suffix = "\n".join(lines[:ends[0]]) + "\n"
    return _ipython_as_python(prefix), _ipython_as_python(suffix)


def _starts_statement(lines: list[str], i: int) -> bool:
    """Whether line `i` starts a top-level statement (as far as one line and the one before can tell)."""
    if not _TOP_LEVEL_START.match(lines[i]) or _CONTINUES.match(lines[i]):
        return False
    previous = next((line.rstrip() for line in reversed(lines[:i]) if line.strip()), "")
    return not previous.endswith(("\\", ",", "(", "[", "{"))


def _ipython_as_python(text: str) -> str:
    """Line magics and shell escapes read as `pass` (the same length, so offsets stay true)."""
    if "%" not in text and "!" not in text:
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        body = line.lstrip()
        if body[:1] in ("%", "!") and not body.startswith("%%") and (i > 0 or len(body) > 1):
            indent = line[:len(line) - len(body)]
            lines[i] = indent + "pass" + " " * max(len(body) - 4, 0) if len(body) >= 4 else indent + "0" * len(body)
    return "\n".join(lines)


# The file name the check compiles under. Compiling model text and the user's cell can warn
# (`1if`: "invalid decimal literal", `"\d"`: "invalid escape sequence"); those warnings are about text
# nobody ran, so they are ignored for this name only, once, without touching any other filter
# (`warnings.catch_warnings` would change the filters of every thread while the user's code runs).
_CHECKED = "<codegemma-check>"
warnings.filterwarnings("ignore", module=re.escape(_CHECKED) + r"\Z")


def parse(text: str) -> Parsed:
    try:
        return Parsed(True, tree=compile(text, _CHECKED, "exec", ast.PyCF_ONLY_AST, dont_inherit=True))
    except SyntaxError as e:
        message = e.msg or "invalid syntax"
        return Parsed(False, _offset_of(text, e.lineno, e.offset), message, any(m in message for m in _INCOMPLETE)
                      and (not message.startswith("expected an indented block") or not text[_offset_of(
                          text, e.lineno, e.offset):].strip()))
    except (ValueError, MemoryError, RecursionError) as e:  # a null byte, a too deeply nested text
        return Parsed(False, len(text), str(e))


def _offset_of(text: str, lineno: int | None, column: int | None) -> int:
    if lineno is None:
        return len(text)
    lines = text.split("\n")
    start = sum(len(line) + 1 for line in lines[:max(lineno - 1, 0)])
    return min(start + max((column or 1) - 1, 0), len(text))
