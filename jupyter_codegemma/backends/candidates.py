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
import functools
import io
import keyword
import re
import tokenize
from typing import Callable, Collection, Iterator, Sequence

from . import parsing
from .bindings import bindings, positions

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BUILTIN_NAMES = frozenset(dir(builtins)) | {"__name__", "__file__", "__doc__", "__builtins__", "__spec__"}


@dataclasses.dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""  # why not, in words
    offset: int = 0  # where in the suggestion the problem starts (its first character when unknown)
    unfinished: bool = False  # passes as code still being written: it opens what nothing after it closes


PASS = Verdict(True)
UNFINISHED = Verdict(True, unfinished=True)


def check(prefix: str, suggestion: str, suffix: str = "", namespace: Collection[str] | None = None) -> Verdict:
    """Whether `suggestion`, inserted between `prefix` and `suffix`, keeps the code as parseable as it was."""
    if not suggestion.strip():
        return PASS
    before, after = parsing.window(prefix, suffix)
    if before.lstrip().startswith("%%"):
        return PASS  # a cell magic's body is not Python
    verdict = _indentation(before, suggestion)
    if not verdict.ok:
        return verdict
    new = parsing.parse(before + suggestion + after)
    if new.ok:
        cut = prefix[:len(prefix) - len(before)] + suffix[len(after):]  # outside the window
        return _names(new.tree, before + suggestion + after, len(before), suggestion, namespace, cut)
    if new.incomplete and not suffix.strip():
        return UNFINISHED  # the user is still writing: what closes it comes next
    old = parsing.parse(before + after)
    if old.ok:
        start, end = len(before), len(before) + len(suggestion)
        return Verdict(False, f"the cell would no longer parse: {new.message}",
                       _inside(new.offset, start, end, suggestion))
    verdict = _compare(before, suggestion, after, old, new)
    if verdict.ok and old.message == "unexpected indent" and _on_next_line(after, old.offset - len(before)):
        # The line after the cursor is indented for a block: the suggestion's line must open it.
        code = len(suggestion) - len(suggestion.lstrip())
        return Verdict(False, "the next line is indented for a block this line does not open", code)
    if verdict.ok and "\n" not in suggestion.strip("\n") and _legal_levels(before[:before.rfind("\n") + 1]):
        # The cell's first error may lie before the suggestion and hide its errors: its line alone too
        # (unless the line continues a statement: inside brackets it cannot stand alone).
        head, tail = before.rsplit("\n", 1)[-1].lstrip(), after.split("\n", 1)[0]
        line = parsing.parse(head + suggestion + tail)
        if not line.ok and not line.incomplete:
            verdict = _compare(head, suggestion, tail, parsing.parse(head + tail), line)
    return verdict


def leaves_open(prefix: str, suggestion: str, suffix: str = "") -> bool:
    """Whether the code with `suggestion` ends too early, with nothing after it: a block it opens, or a
    bracket, that is still to be filled or closed (what `check` lets pass while the user is writing)."""
    return check(prefix, suggestion, suffix).unfinished


def _on_next_line(after: str, offset: int) -> bool:
    """Whether `offset` (in `after`, which begins at the cursor) is on the first line below the cursor's
    that has code."""
    start = after.find("\n") + 1
    if not start:
        return False
    for line in after[start:].split("\n"):
        if line.strip():
            return start <= offset <= start + len(line)
        start += len(line) + 1
    return False


def _compare(before: str, suggestion: str, after: str, old: parsing.Parsed, new: parsing.Parsed) -> Verdict:
    """Text that did not parse before the suggestion and does not with it: whether it adds an error."""
    start, end = len(before), len(before) + len(suggestion)
    mapped = old.offset if old.offset < start else old.offset + len(suggestion)
    if start <= new.offset < end:
        return Verdict(False, f"the suggestion adds an error: {new.message}", new.offset - start)
    line_end = start + (after.find("\n") % (len(after) + 1))
    if start <= old.offset <= line_end and new.offset <= line_end + len(suggestion):
        # The code failed right at the cursor or later on its line (`key = )[0]`, `return set(l)))`: what
        # belongs there is missing, or a bracket the rest of the line closes) and still fails on that
        # line: the suggestion has not supplied it (`lambda x: len(x))`, `sorted(l)`).
        return Verdict(False, f"the code after it on its line still fails: {new.message}",
                       _inside(new.offset, start, end, suggestion))
    if new.offset == mapped and new.message == old.message:
        return PASS  # the error the text already had, unchanged
    if old.ok or new.offset < mapped:
        return Verdict(False, f"the suggestion adds an error: {new.message}",
                       _inside(new.offset, start, end, suggestion))
    return PASS  # the first error moved later: the suggestion fixed what was wrong before it


def starts_with_name(text: str, names: Sequence[str]) -> bool:
    """Whether `text` begins with one of `names`, followed by a character that ends the name (or nothing)."""
    for name in names:
        if text.startswith(name):
            rest = text[len(name):]
            if not rest or not (rest[0].isalnum() or rest[0] == "_") or not (name[-1:].isalnum() or name[-1:] == "_"):
                return True
    return False


def _inside(offset: int, start: int, end: int, suggestion: str = "") -> int:
    """Where in the suggestion an error at `offset` starts; one after it (the next line does not fit
    the suggestion's) is blamed on the suggestion's first word."""
    if offset >= end:
        return len(suggestion) - len(suggestion.lstrip())
    return min(max(offset - start, 0), max(end - start - 1, 0))


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


@functools.lru_cache(maxsize=8)
def _words(text: str) -> frozenset[str]:
    """The identifiers in `text` (kept for the next keystrokes, whose text outside the window is the same)."""
    return frozenset(_IDENTIFIER.findall(text))


def _names(tree: ast.Module, code: str, start: int, suggestion: str, namespace: Collection[str] | None,
           outside_text: str) -> Verdict:
    """A name the suggestion reads that nothing binds (the code, the namespace, the builtins) was made up;
    a name it binds that nothing reads, while the code reads one that nothing binds, was misnamed; and a
    comment, where the code reads a name nothing binds, leaves out what the code needs."""
    if namespace is None or not _IDENTIFIER.search(suggestion):
        return PASS
    names = bindings(tree)
    if names is None:
        return PASS  # a star import binds names the text does not show
    bound, read = names
    end = start + len(suggestion)
    position = positions(code)
    unbound = _unbound(read, bound, namespace, outside_text, position)  # (position, name) of reads nothing binds
    inside = sorted((at, name) for at, name in unbound if start <= at < end)
    if inside:
        return Verdict(False, f"{inside[0][1]!r} is not defined anywhere", inside[0][0] - start)
    if unbound and all(not line.strip() or line.lstrip().startswith("#") for line in suggestion.split("\n")):
        return Verdict(False, f"a comment, where the code reads {unbound[0][1]!r}, which nothing binds",
                       len(suggestion) - len(suggestion.lstrip()))
    if unbound:
        # The code below reads a name nothing binds while the suggestion binds one nothing reads: it
        # named what the code after it needs differently.
        reads = {node.id for node in read}
        stores = sorted((position(node), node.id) for node in ast.walk(tree) if isinstance(node, ast.Name)
                        and not isinstance(node.ctx, ast.Load) and node.id not in reads)
        unused = [(at, name) for at, name in stores if start <= at < end]
        if unused:
            return Verdict(False, f"it binds {unused[0][1]!r}, which nothing reads, while {unbound[0][1]!r} is "
                                  "read and never bound", unused[0][0] - start)
    return PASS


def known_names(namespace: Collection[str], outside_text: str) -> frozenset[str]:
    """The names a read may use without the parsed code binding them: the builtins, the namespace, and
    any word outside the parsed window (the cells above and below may bind it)."""
    return BUILTIN_NAMES | set(namespace) | _words(outside_text)


def unknown(name: str, known: Collection[str]) -> bool:
    """Whether a read of `name` is of a name that is not `known` and not a keyword."""
    return name not in known and not keyword.iskeyword(name)


def _unbound(read: list[ast.Name], bound: set[str], namespace: Collection[str], outside_text: str,
             position: Callable[[ast.AST], int]) -> list[tuple[int, str]]:
    """(position, name) of the reads that nothing binds: not the code, nor a known name (known_names)."""
    known = bound | known_names(namespace, outside_text)
    return [(position(node), node.id) for node in read if unknown(node.id, known)]


def verdict_for(prefix: str, suggestion: str, suffix: str, namespace: Collection[str] | None,
                allowed_names: Sequence[str] = (), parse: bool = True) -> Verdict:
    """`check` (when `parse`), and with `allowed_names` the rule that the suggestion begins with one of them."""
    if allowed_names and suggestion and not starts_with_name(suggestion, allowed_names):
        return Verdict(False, "it begins with no name the namespace has", 0)
    return check(prefix, suggestion, suffix, namespace) if parse else PASS


def passing(stream: Iterator[str], verdict: Callable[[str], Verdict]) -> Iterator[str]:
    """The texts of a streaming suggestion (each the whole suggestion so far) that pass `verdict`: one that
    fails is not shown, and the last one shown stays until a later one passes (a name half written, a
    line that only parses once it ends). So no text that fails the check reaches the editor, even for
    the moment before the finished suggestion is judged and replaced."""
    for text in stream:
        if verdict(text).ok:
            yield text


def shown_or_withheld(stream: Iterator[str], result, prefix: str, suffix: str, namespace: Collection[str] | None,
                      allowed_names: Sequence[str] = (), parse: bool = True) -> Iterator[str]:
    """Stream a suggestion, then check it; one that fails is withheld (an empty suggestion). For a server:
    it cannot be asked to mask its logits (the OpenAI completions API has no such field, and a
    `logit_bias` would need the server's ids of every name's tokens) nor for alternatives from the same
    prefill, so the finished suggestion is judged. `result` is the CompletionResult the stream fills."""
    allowed_names = tuple(name for name in allowed_names if name)
    if parse or allowed_names:
        stream = passing(stream, lambda text: verdict_for(prefix, text, suffix, namespace, allowed_names, parse))
    yield from stream
    if result.stats.finish_reason == "cancelled" or not (parse or allowed_names):
        return
    result.candidates = 1
    if verdict_for(prefix, result.text, suffix, namespace, allowed_names, parse).ok:
        result.checked = "passed"
    else:
        result.checked, result.text = "withheld", ""
        yield ""
