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
import warnings
from typing import Callable, Collection, Iterator, Sequence

from .bindings import bindings, bound_at, positions

# Errors that only say the text stops too early.
_INCOMPLETE = ("was never closed", "unterminated triple-quoted", "unexpected EOF", "expected an indented block")
_TOP_LEVEL_START = re.compile(r"[A-Za-z_@]")
_CONTINUES = re.compile(r"(else|elif|except|finally)\b")  # a clause of the statement above
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


@dataclasses.dataclass(frozen=True)
class _Status:
    """A text's parse: ok, or the first error's character offset and message."""

    ok: bool
    offset: int = 0
    message: str = ""
    incomplete: bool = False  # the error only says the text ends too early
    tree: ast.Module | None = None  # the parsed text, when it parses


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
        cut = prefix[:len(prefix) - len(before)] + suffix[len(after):]  # outside the window
        return _names(new.tree, before + suggestion + after, len(before), suggestion, namespace, cut)
    if new.incomplete and not suffix.strip():
        return UNFINISHED  # the user is still writing: what closes it comes next
    old = _parse(before + after)
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
        line = _parse(head + suggestion + tail)
        if not line.ok and not line.incomplete:
            verdict = _compare(head, suggestion, tail, _parse(head + tail), line)
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


def _compare(before: str, suggestion: str, after: str, old: _Status, new: _Status) -> Verdict:
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


def _window(prefix: str, suffix: str) -> tuple[str, str]:
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


def _parse(text: str) -> _Status:
    try:
        return _Status(True, tree=compile(text, _CHECKED, "exec", ast.PyCF_ONLY_AST, dont_inherit=True))
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


def _known_names(namespace: Collection[str], outside_text: str) -> frozenset[str]:
    """The names a read may use without the parsed code binding them: the builtins, the namespace, and
    any word outside the parsed window (the cells above and below may bind it)."""
    return BUILTIN_NAMES | set(namespace) | _words(outside_text)


def _unknown(name: str, known: Collection[str]) -> bool:
    """Whether a read of `name` is of a name that is not `known` and not a keyword."""
    return name not in known and not keyword.iskeyword(name)


def _unbound(read: list[ast.Name], bound: set[str], namespace: Collection[str], outside_text: str,
             position: Callable[[ast.AST], int]) -> list[tuple[int, str]]:
    """(position, name) of the reads that nothing binds: not the code, nor a known name (_known_names)."""
    known = bound | _known_names(namespace, outside_text)
    return [(position(node), node.id) for node in read if _unknown(node.id, known)]


def names_to_bind(prefix: str, suffix: str, namespace: Collection[str] | None) -> tuple[str, ...]:
    """The names the code after the cursor reads before anything binds them (with `namespace`, the names
    the program sees besides its text's; () without it, or when the code around the cursor does not
    parse or has a star import), in the order they are first read: a NameError or UnboundLocalError
    waiting to happen. The line at the cursor is the likeliest place for what binds them: where the user
    removed or has not yet written it."""
    if namespace is None or not suffix.strip():
        return ()
    before, after = _window(prefix, suffix)
    if before.lstrip().startswith("%%"):
        return ()
    code, status = _parsed_around_line_to_write(before, after)
    names = bindings(status.tree) if status.ok else None
    if names is None:
        return ()
    _, read = names
    start, held = positions(code), bound_at(status.tree, code)
    cut = prefix[:len(prefix) - len(before)] + suffix[len(after):]
    known = _known_names(namespace, cut)
    early = sorted((start(node), node.id) for node in read
                   if _unknown(node.id, known) and start(node) < held(node))
    return tuple(dict.fromkeys(name for at, name in early if at >= len(before)))


def _parsed_around_line_to_write(before: str, after: str) -> tuple[str, _Status]:
    """`before + after` parsed; when it does not parse and the cursor is on a line still to write, the
    same with a statement there that binds and reads nothing (`pass`, or `if True:` where the code after
    it is indented as a block's body), at the first level that parses: without the line the user has
    still to write, a block may have no body (`for x in xs:` just above) or a body no header (the line
    to write opens it), and the names the code after it reads are still worth knowing."""
    code = before + after
    status = _parse(code)
    placeholder = None if status.ok else _placeholder(before, after)
    if placeholder is None:
        return code, status
    # It goes where the cursor is: the reads after the cursor are still those at or past len(before).
    text = before[:before.rfind("\n") + 1] + "".join(placeholder) + "\n" + after
    return text, _parse(text)


def _placeholder(before: str, after: str) -> tuple[str, str] | None:
    """(indentation, statement) of the placeholder that makes `before + line + after` parse, or None."""
    head, _, typed = before.rpartition("\n")
    if typed.strip() or not head:
        return None
    for indent in _levels_to_try(head + "\n", typed):
        for statement in ("pass", "if True:"):
            if _parse(f"{head}\n{indent}{statement}\n{after}").ok:
                return indent, statement
    return None


def block_to_open(prefix: str, suffix: str) -> str | None:
    """The indentation of the block header the line at the cursor must be, when the code around it
    parses only with one there (the code after the cursor is a body without its header); else None."""
    before, after = _window(prefix, suffix)
    if _parse(before + after).ok:
        return None
    placeholder = _placeholder(before, after)
    return placeholder[0] if placeholder is not None and placeholder[1] == "if True:" else None


def _levels_to_try(head: str, typed: str) -> list[str]:
    """The indentations a line after `head` may have, deepest first: the one typed on it, else each code
    line's above and one level deeper than a line that opens a block."""
    if typed:
        return [typed]
    lines = [line for line in head.split("\n") if line.strip() and not line.lstrip().startswith("#")]
    levels = {line[:len(line) - len(line.lstrip())] for line in lines}
    if lines and lines[-1].rstrip().endswith(":"):
        last = lines[-1][:len(lines[-1]) - len(lines[-1].lstrip())]
        levels.add(last + "    ")
    return sorted(levels, key=len, reverse=True)


def binds(prefix: str, suggestion: str, suffix: str, names: Collection[str], namespace: Collection[str]) -> bool:
    """Whether `suggestion`, inserted at the cursor, binds one of `names` before the code after it reads it."""
    return not set(names) <= set(names_to_bind(prefix + suggestion, suffix, namespace))


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
