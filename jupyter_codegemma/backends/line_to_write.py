"""The line still to write at the cursor: the names it must bind (those the code after it reads before
anything binds them) and whether it must open the block below (`read`, once per request); how far a
suggestion binds those names (`binding`); and the lines begun for the model that would bind them
(`lines_that_bind`). The search for alternatives (local/alternatives.py) asks it; the code around the
cursor is parsed as the check parses it (parsing.py) and its names known as the check knows them
(candidates.py). Pure Python (ast), no JAX."""

from __future__ import annotations

import ast
import dataclasses
import re
import sys
from typing import Collection, Sequence

from .bindings import bindings, bound_at, positions
from .candidates import known_names, unknown
from .parsing import Parsed, parse, window

NONE, SOME, ALL = 0, 1, 2  # how far a suggestion binds the names the code after the cursor needs


@dataclasses.dataclass(frozen=True)
class LineToWrite:
    """What the line at the cursor must do, read from one parse of the code around it (`read`)."""

    needed: tuple[str, ...] = ()  # the names the code after it reads before anything binds them
    opener: str | None = None  # the indentation of the block header it must be, where only one lets the code parse


def read(prefix: str, suffix: str, namespace: Collection[str] | None) -> LineToWrite:
    """The names the code after the cursor reads before anything binds them (with `namespace`, the names
    the program sees besides its text's; () without it, or when the code around the cursor does not
    parse or has a star import), in the order they are first read: a NameError or UnboundLocalError
    waiting to happen. The line at the cursor is the likeliest place for what binds them: where the user
    removed or has not yet written it. And the indentation of the block header that line must be, when
    the code around it parses only with one there (the code after the cursor is a body without its
    header); read with the names, so None where none are sought (no namespace, nothing after the cursor)."""
    if namespace is None or not suffix.strip():
        return LineToWrite()
    before, after = window(prefix, suffix)
    if before.lstrip().startswith("%%"):
        return LineToWrite()
    code, status, placeholder = _parsed_around_line_to_write(before, after)
    opener = placeholder[0] if placeholder is not None and placeholder[1] == "if True:" else None
    names = bindings(status.tree) if status.ok else None
    if names is None:
        return LineToWrite(opener=opener)
    _, reads = names
    start, held = positions(code), bound_at(status.tree, code)
    cut = prefix[:len(prefix) - len(before)] + suffix[len(after):]
    known = known_names(namespace, cut)
    early = sorted((start(node), node.id) for node in reads
                   if unknown(node.id, known) and start(node) < held(node))
    return LineToWrite(tuple(dict.fromkeys(name for at, name in early if at >= len(before))), opener)


def names_to_bind(prefix: str, suffix: str, namespace: Collection[str] | None) -> tuple[str, ...]:
    """The names the code after the cursor reads before anything binds them (`read`)."""
    return read(prefix, suffix, namespace).needed


def binding(prefix: str, text: str, suffix: str, needed: Collection[str], namespace: Collection[str] | None) -> int:
    """How far `text`, inserted at the cursor, binds the names `needed` (names_to_bind): ALL of them (or
    none is needed), SOME, or NONE."""
    if not needed:
        return ALL
    left = set(needed) & set(names_to_bind(prefix + text, suffix, namespace))
    return ALL if not left else SOME if len(left) < len(needed) else NONE


def _parsed_around_line_to_write(before: str, after: str) -> tuple[str, Parsed, tuple[str, str] | None]:
    """`before + after` parsed; when it does not parse and the cursor is on a line still to write, the
    same with a statement there that binds and reads nothing (`pass`, or `if True:` where the code after
    it is indented as a block's body), at the first level that parses: without the line the user has
    still to write, a block may have no body (`for x in xs:` just above) or a body no header (the line
    to write opens it), and the names the code after it reads are still worth knowing. With the text
    parsed, its parse, and the placeholder (_placeholder) it holds, if any."""
    code = before + after
    status = parse(code)
    found = None if status.ok else _placeholder(before, after)
    return found if found is not None else (code, status, None)


def _placeholder(before: str, after: str) -> tuple[str, Parsed, tuple[str, str]] | None:
    """The text with the placeholder that makes `before + line + after` parse, its parse, and the
    placeholder (indentation, statement); or None. It goes where the cursor is: the reads after the
    cursor are still those at or past len(before)."""
    head, _, typed = before.rpartition("\n")
    if typed.strip() or not head:
        return None
    for indent in _levels_to_try(head + "\n", typed):
        for statement in ("pass", "if True:"):
            text = f"{head}\n{indent}{statement}\n{after}"
            parsed = parse(text)
            if parsed.ok:
                return text, parsed, (indent, statement)
    return None


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


# --- the lines begun for the model ---------------------------------------------------------------


def block_to_open(to_write: LineToWrite, suffix: str, first: str) -> str | None:
    """The indentation of the block header the line at the cursor must be: where the code around it
    parses only with one (`to_write.opener`), or where the first suggestion's line sits shallower than
    the code after it (`for idx, x in xs:` above, the body's `if idx != j:` below: the line between
    opens the block that holds it); None when it need not open one."""
    if to_write.opener is not None:
        return to_write.opener
    below = next((line for line in suffix.split("\n") if line.strip() and not line.lstrip().startswith("#")), "")
    indent = first[:len(first) - len(first.lstrip())]
    if "\n" in indent or not first.strip():
        return None
    return indent if len(indent) < len(below) - len(below.lstrip()) else None


def lines_that_bind(needed: Sequence[str], opener: str | None, first: str, suffix: str) -> list[str]:
    """How the lines forced on the model begin (local/alternatives.py). Where the line opens the block
    below, at `opener`'s indentation: for a name the code calls, that function's header, the needed
    names its block reads as parameters (`def xor(i, j):`); a loop over the names the block reads (`for
    idx, elem in`). Else, at the first suggestion's indentation: the import of a module of the standard
    library, and the assignment of the other names, all at once and then the first alone (`start, end
    =`, `start =`)."""
    call = r"(?<![\w.]){}\s*\("
    called = [name for name in needed if re.search(call.format(re.escape(name)), suffix)]
    if opener is not None:
        block = _block_below(suffix, opener)
        at = {name: found.start() for name in needed if (found := re.search(rf"(?<![\w.]){re.escape(name)}\b", block))}
        reads = sorted(at, key=at.get)
        lines = [_header_of(opener, name, [other for other in reads if other != name], _arity(suffix, name))
                 for name in called[:1]]
        loop = [name for name in reads if name not in called][:3]
        return lines + ([f"{opener}for {', '.join(loop)} in"] if loop else [])
    indent = first[:len(first) - len(first.lstrip())]
    modules = [name for name in needed if name in sys.stdlib_module_names]
    names = [name for name in needed if name not in modules]
    lines = [f"{indent}import {name}" for name in modules[:1]]
    if len(names) > 1:
        lines.append(f"{indent}{', '.join(names[:3])} =")
    return lines + [f"{indent}{name} =" for name in names[:1]]


def _header_of(opener: str, name: str, parameters: list[str], arity: int | None) -> str:
    """`def name(a, b):` with the names the block reads as parameters, when the code calls it with as
    many arguments (or its calls cannot be read); else `def name(`, for the model to go on."""
    if arity is not None and arity != len(parameters):
        return f"{opener}def {name}("
    return f"{opener}def {name}({', '.join(parameters)}):"


def _arity(suffix: str, name: str) -> int | None:
    """How many arguments the first call of `name` in `suffix` passes, where its line can be read alone."""
    for line in suffix.split("\n"):
        if not re.search(rf"(?<![\w.]){re.escape(name)}\s*\(", line):
            continue
        statement = re.sub(r"^(elif|else|while|if)\b", "if", line.strip())
        for text in (statement, statement + " pass"):
            try:
                tree = ast.parse(text)
            except SyntaxError:
                continue
            calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                     and isinstance(node.func, ast.Name) and node.func.id == name]
            if calls and not any(isinstance(arg, ast.Starred) for arg in calls[0].args) and not calls[0].keywords:
                return len(calls[0].args)
            break
        return None
    return None


def _block_below(suffix: str, opener: str) -> str:
    """The lines of the block the line at the cursor opens: those after it, from the first with code,
    while they are blank or indented deeper than `opener`."""
    lines = suffix.split("\n")[1:]
    while lines and not lines[0].strip():
        lines.pop(0)
    block = []
    for line in lines:
        if line.strip() and len(line) - len(line.lstrip()) <= len(opener):
            break
        block.append(line)
    return "\n".join(block)
