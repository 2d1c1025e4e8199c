"""Facts from the live kernel for a completion: what the names near the cursor hold, and which names
are valid right at the cursor.

The model runs beside the user's objects, so at `rows[0]["` it can be told the keys, at `item.` the
attributes, at `fit(` the signature, instead of guessing them from the cell text. `read_facts` reads
them from a copy of the namespace with safe_readers (never running user code) within a time budget,
and `with_facts` puts them in the prompt as a comment block just above the current line (measured
against the top of the prompt in bench/kernel_context.py and evaluation/notebook_state.py).

The block depends only on the lines above the cursor's line, on the object the cursor is on (`df` in
`df["na`) and on the first letter of a plain word being typed, never on the rest of the line: while
the user types on one line it stays the same text, so the engine reuses the KV cache of everything up
to the current line between keystrokes.
"""

from __future__ import annotations

import ast
import re
import time
from dataclasses import dataclass

from . import cursor_text, safe_readers as read
from .conversation.limits import is_secret_name

BUDGET_S = 0.008  # reading stops adding facts after this (the bench's p95 with 1 000 names is far below)
MAX_CHARS = 700  # of facts text (about 200 tokens of the default model's tokenizer)
NEARBY_LINES = 20  # lines above the cursor whose names are described
MAX_NEARBY = 6  # names described from those lines
MAX_FITTING = 12  # namespace names shown for a plain word being typed
MAX_LISTED = 24  # attributes or keys written out in one fact
HEADER = "In the kernel now:"
# Names every IPython namespace has, which describe nothing of the user's.
_IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})

_NAME = r"[A-Za-z_]\w*"
_DOTTED = rf"{_NAME}(?:\.{_NAME})*"
_ATTRIBUTE_AT_CURSOR = re.compile(rf"(?<![\w.\])])({_DOTTED})\.(\w*)$")
_INDEX = r"""\[(?:-?\d+|'[^'\[\]\n]*'|"[^"\[\]\n]*")\]"""  # [0], ['name'], ["name"]: literal indexes
_SUBSCRIPT_AT_CURSOR = re.compile(rf"(?<![\w.])({_DOTTED}(?:{_INDEX})*)\[\s*(?:(['\"])([^'\"\\\n]*)|(\w*))$")
_WORD_AT_CURSOR = re.compile(rf"(?<![\w.'\"])({_NAME})$")
_KEYWORD_USED = re.compile(rf"(?:^|[(,])\s*({_NAME})\s*=(?!=)")
# `for r in rows:` and `[r.x for r in rows if r.` : r is (like) the first item of rows.
_LOOP = re.compile(rf"(?<![\w.])for\s+({_NAME})\s+in\s+({_DOTTED})(?![\w.(\[])")
_IDENTIFIER = re.compile(rf"(?<![\w.])({_NAME})")


@dataclass(frozen=True)
class KernelFacts:
    """What the kernel knows at one cursor."""

    lines: tuple[str, ...] = ()  # one fact each, without the comment marker
    allowed: tuple[str, ...] = ()  # the names valid where the cursor's word starts, when that is known
    typed: str = ""  # what of that word is typed already
    elapsed_ms: float = 0.0

    @property
    def count(self) -> int:
        return len(self.lines)

    def continuations(self) -> tuple[str, ...]:
        """What a completion must start with: the rest of each allowed name that fits what is typed.
        Empty (no constraint) when nothing is known, or when the typed word is a whole name already."""
        rests = tuple(name[len(self.typed):] for name in self.allowed if name.startswith(self.typed))
        return () if not rests or "" in rests else rests

    def comment_block(self, indent: str = "") -> str:
        """The facts as comment lines at `indent`, each ending in a newline ("" when there are none)."""
        if not self.lines:
            return ""
        return "".join(f"{indent}# {line}\n" for line in (HEADER, *self.lines))


NO_FACTS = KernelFacts()


def read_facts(namespace, prefix: str, *, budget_s: float | None = None, max_chars: int = MAX_CHARS) -> KernelFacts:
    """The facts for a cursor at the end of `prefix`, read from `namespace` (the user's dict). Never
    raises: a namespace changing under us (a cell running) or an object we cannot read gives fewer facts."""
    started = time.perf_counter()
    try:
        names = dict.copy(namespace) if type(namespace) is dict else {}  # one C-level copy: a cell may be adding names
        deadline = started + (BUDGET_S if budget_s is None else budget_s)
        lines, allowed, typed = _collect(names, prefix, deadline, max_chars)
    except Exception:  # noqa: BLE001 - whatever the namespace does, a completion goes on without facts
        lines, allowed, typed = [], (), ""
    return KernelFacts(lines=tuple(lines), allowed=allowed, typed=typed,
                       elapsed_ms=(time.perf_counter() - started) * 1e3)


def with_facts(prefix: str, facts: KernelFacts, placement: str = "line") -> str:
    """`prefix` with the facts' comment block above its last line ("line") or at its start ("top")."""
    if not facts.lines:
        return prefix
    head, sep, current = prefix.rpartition("\n")
    if placement == "top":
        return facts.comment_block() + prefix
    if placement != "line":
        raise ValueError(f"placement must be 'line' or 'top', got {placement!r}")
    indent = current[:len(current) - len(current.lstrip(" \t"))]
    # Comments right above the line say what it is for: the facts go above them, so they stay next to
    # the code they describe (measured: bench/kernel_context_placement.py).
    lines = head.split("\n") if sep else []
    keep = len(lines)
    if not current.strip():
        # Nothing typed on the line yet: the block goes above the last line of code, so that code is
        # what the model reads last (right after a comment block it writes another comment:
        # library-lines in `codegemma eval`).
        while keep and not lines[keep - 1].strip():
            keep -= 1
        keep = max(keep - 1, 0)
        if keep < len(lines):
            indent = lines[keep][:len(lines[keep]) - len(lines[keep].lstrip(" \t"))]
    while keep and lines[keep - 1].lstrip().startswith("#") and lines[keep - 1].startswith(indent):
        keep -= 1
    above, comments = lines[:keep], lines[keep:]
    before = "\n".join(above) + "\n" if above else ""
    return before + facts.comment_block(indent) + "".join(c + "\n" for c in comments) + current


# --- reading --------------------------------------------------------------------------------------------


def _collect(names: dict, prefix: str, deadline: float, max_chars: int):
    above, _, line = prefix.rpartition("\n")
    lines: list[str] = []
    # The cursor's own fact is read first and always kept (one object, bounded work); the rest fills
    # what time and room are left.
    used = [0]

    def add(fact: str) -> bool:
        """Keep `fact` if it fits the budgets; False once time or room is spent."""
        if time.perf_counter() > deadline or used[0] + len(fact) > max_chars:
            return False
        lines.append(fact)
        used[0] += len(fact) + 3
        return True

    for var, iterable in _LOOP.findall("\n".join(above.split("\n")[-NEARBY_LINES:]) + "\n" + line):
        if var not in names:
            item = read.first_item(_resolve(names, iterable))
            if item is not None:
                names[var] = item
    cursor = _cursor_fact(names, line, cursor_text.leading_comments(above))
    target_root = cursor.root if cursor else ""
    if cursor is not None and cursor.fact:
        used[0] += len(cursor.fact[:max_chars]) + 3
    # Names the code above uses (nearest first), and the cursor's object: their types and shapes.
    described = []
    # The current line's names count too, all but the word being typed (so the block changes only when
    # a name is finished, not at each keystroke).
    finished = _WORD_AT_CURSOR.sub("", line)
    for name in _nearby_names(above + "\n" + finished):
        if len(described) >= MAX_NEARBY:
            break
        if name in names and name != target_root and name not in _IPYTHON_NAMES and not name.startswith("_"):
            described.append(name)
    for name in described:
        if not add(f"{name}: {_describe(name, names[name])}"):
            break
    word = _WORD_AT_CURSOR.search(line) if cursor is None else None
    if word:  # a plain name being typed: the names that fit its first letter (stable while it grows)
        first = word.group(1)[0]
        fitting = [n for n in names if type(n) is str and n.startswith(first)]  # the one pass over all names
        fitting = [n for n in fitting if n not in _IPYTHON_NAMES and n not in described][:MAX_FITTING]
        if fitting:
            add("names: " + ", ".join(f"{n} ({_short_kind(names[n])})" for n in sorted(fitting)))
    if cursor is None:
        return lines, (), ""
    if cursor.fact:
        lines.append(_cut(cursor.fact, max_chars))
    return lines, cursor.allowed, cursor.typed


def _cut(fact: str, max_chars: int) -> str:
    """A fact within `max_chars`, cut after a whole item of its list."""
    if len(fact) <= max_chars:
        return fact
    return fact[:max_chars].rsplit(", ", 1)[0] + ", ..."


@dataclass(frozen=True)
class _Cursor:
    root: str  # the namespace name the cursor's object starts from
    fact: str
    allowed: tuple[str, ...] = ()
    typed: str = ""


def _cursor_fact(names: dict, line: str, comments: str = "") -> _Cursor | None:
    """The fact about the object the cursor is on (`obj.`, `obj[`, `obj(`), and the valid names there.
    Keys and attributes are listed most relevant first: those sharing words with the comments above the
    line and the line before the object (the model tends to take the first name it is shown)."""
    m = _SUBSCRIPT_AT_CURSOR.search(line) or _COLUMN_ARGUMENT.search(line)
    if m:
        expr, quote = m.group(1), m.group(2)
        obj = _resolve(names, expr)
        found = read.subscript_keys(obj) if obj is not _MISSING else None
        if not found or (m.re is _COLUMN_ARGUMENT and found[1] != "columns"):
            return None
        keys, what = found
        keys = cursor_text.by_relevance(keys, comments + "\n" + line[:m.start()], line[:m.start()])
        with_types = bool(keys) and type(keys[0]) is tuple
        shown = [f"{_key(k[0])} ({k[1]})" if with_types else _key(k) for k in keys[:MAX_LISTED]]
        plain = [k[0] if with_types else k for k in keys]
        allowed = tuple(k for k in plain if type(k) is str) if quote and len(keys) < read.MAX_KEYS else ()
        return _Cursor(expr.split(".")[0], f"{expr} {what}: {', '.join(shown)}", allowed,
                       m.group(3) if quote else "")
    m = _ATTRIBUTE_AT_CURSOR.search(line)
    if m and not cursor_text.in_string_or_comment(line[:m.start()]):
        expr, typed = m.group(1), m.group(2)
        obj = _resolve(names, expr)
        if obj is _MISSING:
            return None
        found = read.attributes(obj)
        if found is None:
            return None
        attributes, complete = found
        # Private names are valid too, but offered only once the user types the underscore.
        offered = tuple(n for n in attributes if typed.startswith("_") or not n.startswith("_"))
        # Listed: those sharing the typed word's first letter (stable while it grows), the object's
        # own data first (instance attributes come last in `attributes`), then the rest by name.
        listed = [n for n in offered if not typed or n.startswith(typed[0])]
        own = [n for n in listed if not attributes[n].startswith(("method", "function", "class", "module"))][::-1]
        listed = own + sorted(n for n in listed if n not in set(own))
        listed = cursor_text.by_relevance(listed, comments + "\n" + line[:m.start()], line[:m.start()])
        shown = [f"{n} ({_kind_shown(n, attributes[n])})" for n in listed[:MAX_LISTED]]
        shown += ["..."] if len(listed) > MAX_LISTED else []
        fact = f"{expr}: {_describe(expr, obj)}; attributes{' ' + repr(typed[0]) + '...' if typed else ''}: " \
            + ", ".join(shown)
        return _Cursor(expr.split(".")[0], fact, offered if complete else (), typed)
    call = cursor_text.open_call(line)
    if call is not None:
        expr, arguments = call
        obj = _resolve(names, expr)
        found = read.signature(obj) if obj is not _MISSING else None
        if found is None:
            return None
        text, keywords, positional = found
        used = set(_KEYWORD_USED.findall(arguments))
        given = [a for a in cursor_text.top_level_arguments(arguments)[:-1]
                 if not re.match(rf"\s*{_NAME}\s*=(?!=)", a)]  # positional arguments
        used.update(positional[:len(given)])  # filled by the positional arguments before the keywords
        typing = re.search(rf"(?:^|,)\s*(\w*)$", arguments)
        allowed = ()
        if _KEYWORD_USED.search(arguments) and typing:  # after a keyword argument only keywords may follow
            allowed = tuple(f"{k}=" for k in keywords if k not in used)
        return _Cursor(expr.split(".")[0], f"{expr}{text}", allowed, typing.group(1) if allowed else "")
    return None


_MISSING = object()
# A DataFrame method's column-label argument being typed: `df.groupby('`, `df.sort_values(by="`.
_COLUMN_ARGUMENT = re.compile(
    rf"(?<![\w.])({_DOTTED})\.(?:groupby|sort_values|set_index|drop_duplicates|pivot_table|nlargest|nsmallest|"
    rf"explode|value_counts)\((?:[^()'\"]*?\b(?:by|subset|columns|index|values)\s*=\s*)?\[?\s*(['\"])([^'\"\\\n]*)$")


def _resolve(names: dict, expr: str):
    """The object `expr` names (a dotted name, then literal indexes: `rows[0]`, `cfg['db']`), read
    statically: list/tuple items by position, exact-dict values by literal key."""
    dotted = expr.split("[", 1)[0]
    root, *attrs = dotted.split(".")
    obj = names.get(root, _MISSING)
    for attr in attrs:
        if obj is _MISSING:
            return obj
        try:
            obj = read.static_attribute(obj, attr)
        except (AttributeError, KeyError):
            return _MISSING
    for index in re.findall(_INDEX, expr[len(dotted):]):
        if obj is _MISSING:
            return obj
        obj = read.literal_item(obj, ast.literal_eval(index[1:-1]))
        if obj is None:
            return _MISSING
    return obj


def _describe(name: str, obj) -> str:
    if is_secret_name(name):
        return read.type_name(obj)  # never a credential's value, however short
    text = read.describe(obj)
    item = read.first_item(obj)
    if type(item) is dict:
        keys = read.subscript_keys(item)
        if keys:
            listed = ", ".join(map(_key, keys[0][:MAX_LISTED]))
            return f"{text}, each a dict with keys {listed}"
    keys = read.subscript_keys(obj) if read.library_type(obj, "pandas", "DataFrame") or \
        read.library_type(obj, "numpy", "ndarray") else None
    if keys:
        listed = ", ".join(f"{k} {t}" for k, t in keys[0][:8]) + (", ..." if len(keys[0]) > 8 else "")
        text += f" ({keys[1]}: {listed})"
    return text


def _key(key) -> str:
    """A key as the model sees it: its literal (credential-looking text redacted), or ... when long."""
    return read.short_literal(key) or "..."


def _kind_shown(name: str, kind: str) -> str:
    """An attribute's kind, without its value where the name says it is a credential."""
    if is_secret_name(name) and "=" in kind:
        return kind.split("=")[0].strip() or "value"
    return kind


def _short_kind(obj) -> str:
    text = read.describe(obj)
    return text.split(" = ")[0] if " = " in text else text


def _nearby_names(above: str) -> list[str]:
    """Identifiers of the lines above the cursor, the nearest first."""
    seen: dict[str, None] = {}
    for line in reversed(above.split("\n")[-NEARBY_LINES:]):
        code = line.split("#", 1)[0]
        for name in reversed(_IDENTIFIER.findall(code)):
            seen.setdefault(name, None)
    return list(seen)


