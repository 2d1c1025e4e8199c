"""Whether a suggestion may be shown: it must keep the cell as parseable as it was.

One check for every backend and for `codegemma eval` (which measures what the user gets): the local
engine asks it of each candidate and tries alternatives when one fails (local/alternatives.py); a
server's completion that fails it is withheld. Pure Python (ast, tokenize), no JAX.

A candidate fails when, inserted at the cursor,
- a line it begins is indented to a level no open block has (or not deeper after a line ending in ':');
- the cell parsed without it and does not with it, unless only its end is missing (an unclosed bracket,
  a block with no body yet) and nothing follows the cursor: the user is still writing;
- the cell did not parse, and the first error moves earlier or into the suggestion (unfinished code
  that was already unparseable stays allowed as long as the suggestion adds no error of its own);
- with `namespace` given (the names the program can see besides those its text binds), it reads a name
  that nothing binds: the model made it up.
Cells with IPython syntax are checked with `%line magics` and `!shell` lines read as `pass`; a cell
magic (`%%`) is not Python and is not checked.

Each failure says where in the suggestion it starts (`offset`), so that alternatives branch there.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import io
import keyword
import re
import tokenize
from typing import Collection, Sequence

# The cell text around the cursor that is parsed: a notebook's cells above can be long, and the
# check runs on every keystroke's suggestion.
MAX_LINES_BEFORE, MAX_LINES_AFTER = 300, 100
# Errors that only say the text stops too early.
_INCOMPLETE = ("was never closed", "unterminated triple-quoted", "unexpected EOF", "expected an indented block")
_TOP_LEVEL_START = re.compile(r"(def|class|async|import|from|@|if __name__)\b|@")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BUILTIN_NAMES = frozenset(dir(builtins)) | {"__name__", "__file__", "__doc__", "__builtins__", "__spec__"}


@dataclasses.dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""  # why not, in words
    offset: int = 0  # where in the suggestion the problem starts (its first character when unknown)


PASS = Verdict(True)


@dataclasses.dataclass(frozen=True)
class _Status:
    """A text's parse: ok, or the first error's character offset and message."""

    ok: bool
    offset: int = 0
    message: str = ""
    incomplete: bool = False  # the error only says the text ends too early


def check(prefix: str, suggestion: str, suffix: str = "", namespace: Collection[str] | None = None) -> Verdict:
    """Whether `suggestion`, inserted between `prefix` and `suffix`, keeps the code as parseable as it was."""
    if not suggestion.strip():
        return PASS
    before, after = _window(prefix, suffix)
    if before.lstrip().startswith("%%"):
        return PASS  # a cell magic's body is not Python
    verdict = _indentation(before, suggestion)
    if not verdict.ok:
        return verdict
    new = _parse(before + suggestion + after)
    if new.ok:
        return _names(before + suggestion + after, len(before), suggestion, namespace, prefix)
    if new.incomplete and not after.strip():
        return PASS  # the user is still writing: what closes it comes next
    old = _parse(before + after)
    if old.ok:
        start, end = len(before), len(before) + len(suggestion)
        return Verdict(False, f"the cell would no longer parse: {new.message}", _inside(new.offset, start, end))
    verdict = _compare(before, suggestion, after, old, new)
    if verdict.ok and "\n" not in suggestion.strip("\n") and _legal_levels(before[:before.rfind("\n") + 1]):
        # The cell's first error may lie before the suggestion and hide its errors: its line alone too
        # (unless the line continues a statement: inside brackets it cannot stand alone).
        head, tail = before.rsplit("\n", 1)[-1].lstrip(), after.split("\n", 1)[0]
        line = _parse(head + suggestion + tail)
        if not line.ok and not line.incomplete:
            verdict = _compare(head, suggestion, tail, _parse(head + tail), line)
    return verdict


def _compare(before: str, suggestion: str, after: str, old: _Status, new: _Status) -> Verdict:
    """Text that did not parse before the suggestion and does not with it: whether it adds an error."""
    start, end = len(before), len(before) + len(suggestion)
    mapped = old.offset if old.offset < start else old.offset + len(suggestion)
    if new.offset == mapped and new.message == old.message:
        return PASS  # the error the text already had, unchanged
    if old.ok or new.offset < mapped or start <= new.offset < end:
        return Verdict(False, f"the suggestion adds an error: {new.message}", _inside(new.offset, start, end))
    return PASS  # the first error moved later: the suggestion fixed what was wrong before it


def starts_with_name(text: str, names: Sequence[str]) -> bool:
    """Whether `text` begins with one of `names`, followed by a character that ends the name (or nothing)."""
    for name in names:
        if text.startswith(name):
            rest = text[len(name):]
            if not rest or not (rest[0].isalnum() or rest[0] == "_") or not (name[-1:].isalnum() or name[-1:] == "_"):
                return True
    return False


def _inside(offset: int, start: int, end: int) -> int:
    return min(max(offset - start, 0), max(end - start - 1, 0))


def _window(prefix: str, suffix: str) -> tuple[str, str]:
    """The end of `prefix` and the start of `suffix` that are parsed: each cut, when long, at a line that
    starts a top-level definition (so that the cut does not split a statement)."""
    lines = prefix.split("\n")
    if len(lines) > MAX_LINES_BEFORE:
        tail = lines[-MAX_LINES_BEFORE:]
        starts = [i for i, line in enumerate(tail[:-1]) if _TOP_LEVEL_START.match(line)]
        prefix = "\n".join(tail[starts[0]:] if starts else tail)
    lines = suffix.split("\n")
    if len(lines) > MAX_LINES_AFTER:
        head = lines[:MAX_LINES_AFTER]
        starts = [i for i, line in enumerate(head) if i > 0 and _TOP_LEVEL_START.match(line)]
        suffix = "\n".join(head[:starts[-1]] if starts else head)
    return _ipython_as_python(prefix), _ipython_as_python(suffix)


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


def _parse(text: str) -> _Status:
    try:
        compile(text, "<cell>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
        return _Status(True)
    except SyntaxError as e:
        message = e.msg or "invalid syntax"
        return _Status(False, _offset_of(text, e.lineno, e.offset), message, any(m in message for m in _INCOMPLETE)
                       and (not message.startswith("expected an indented block") or not text[_offset_of(
                           text, e.lineno, e.offset):].strip()))
    except (ValueError, MemoryError, RecursionError) as e:  # a null byte, a too deeply nested text
        return _Status(False, len(text), str(e))


def _offset_of(text: str, lineno: int | None, column: int | None) -> int:
    if lineno is None:
        return len(text)
    lines = text.split("\n")
    start = sum(len(line) + 1 for line in lines[:max(lineno - 1, 0)])
    return min(start + max((column or 1) - 1, 0), len(text))


# --- indentation ---------------------------------------------------------------------------------


def _indentation(before: str, suggestion: str) -> Verdict:
    """Each line the suggestion begins (with code on it) sits at a level an open block has, or deeper
    than the line before it when that one opens a block."""
    text = before
    for i, part in enumerate(suggestion.split("\n")):
        line_start = i > 0 or not before.rsplit("\n", 1)[-1].strip()
        if line_start and part.strip():
            head = text[:text.rfind("\n") + 1]  # the code before the line this part is on
            current = text[len(head):] + part
            indent = len(current) - len(current.lstrip(" \t"))
            legal = _legal_levels(head)
            if legal is not None and not legal(indent):
                offset = sum(len(p) + 1 for p in suggestion.split("\n")[:i])
                return Verdict(False, f"a line indented by {indent} is at no level an open block has", offset)
        text += part + "\n"
    return PASS


def _legal_levels(code: str):
    """For the lines of `code` (which ends at a line start), a test of the indentation the next line may
    have; None when any is fine (inside brackets, a string, after a backslash, or unreadable code)."""
    stack, opens_block, depth = [0], False, 0
    last_line_indent, lines = 0, code.count("\n")
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.INDENT:
                stack.append(len(tok.string.expandtabs(8)))
            elif tok.type == tokenize.DEDENT and tok.start[0] <= lines:  # not the ones the end of the text closes
                if len(stack) > 1:
                    stack.pop()
            elif tok.type == tokenize.OP:
                depth += 1 if tok.string in "([{" else -1 if tok.string in ")]}" else 0
            if tok.type not in (tokenize.NL, tokenize.COMMENT, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                                tokenize.ENDMARKER):
                opens_block = tok.type == tokenize.OP and tok.string == ":" and depth == 0
                last_line_indent = len(tok.line) - len(tok.line.lstrip(" \t"))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None  # inside brackets or a string at the end, or code tokenize cannot read: no rule
    if depth > 0 or code.endswith("\\\n"):
        return None
    if opens_block:
        floor = max(last_line_indent, stack[-1])
        return lambda indent: indent > floor
    levels = set(stack)
    return lambda indent: indent in levels


# --- names ---------------------------------------------------------------------------------------


def _names(code: str, start: int, suggestion: str, namespace: Collection[str] | None, prefix: str) -> Verdict:
    """A name the suggestion reads that nothing binds (the code, the namespace, the builtins) was made up."""
    if namespace is None or not _IDENTIFIER.search(suggestion):
        return PASS
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return PASS
    bound: set[str] = set()
    read: list[ast.Name] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read.append(node) if isinstance(node.ctx, ast.Load) else bound.add(node.id))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(alias.name == "*" for alias in node.names):
                return PASS  # a star import binds names the text does not show
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
    line_starts = [0]
    for line in code.split("\n"):
        line_starts.append(line_starts[-1] + len(line) + 1)
    end = start + len(suggestion)
    # Words outside the parsed window may bind names too (cells above a long notebook).
    outside = set(_IDENTIFIER.findall(prefix[:max(len(prefix) - start, 0)])) if len(prefix) > start else set()
    for node in sorted(read, key=lambda n: (n.lineno, n.col_offset)):
        line = code[line_starts[node.lineno - 1]:line_starts[node.lineno] - 1]
        at = line_starts[node.lineno - 1] + len(line.encode()[:node.col_offset].decode(errors="ignore"))
        if start <= at < end and node.id not in bound and node.id not in BUILTIN_NAMES \
                and node.id not in namespace and node.id not in outside and not keyword.iskeyword(node.id):
            return Verdict(False, f"{node.id!r} is not defined anywhere", at - start)
    return PASS
