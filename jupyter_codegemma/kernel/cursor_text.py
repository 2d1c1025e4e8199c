"""Reading the code before the cursor as text, for the kernel-context facts: the call the cursor is in
and its arguments, the comments that lead into the line, and which names relate to them. Rough by
design (quotes counted, no escapes): it runs at every keystroke and must never fail."""

from __future__ import annotations

import re

_NAME = r"[A-Za-z_]\w*"
_DOTTED = rf"{_NAME}(?:\.{_NAME})*"


def words(text: str) -> set[str]:
    """Words for relevance: lower case, split at underscores, a plural's s dropped (years ~ birth_year)."""
    return {w[:-1] if w.endswith("s") and len(w) > 3 else w
            for w in re.findall(r"[a-z0-9]+", text.lower().replace("_", " ")) if len(w) > 1}


def by_relevance(items: list, context: str, line: str) -> list:
    """`items` (names, or (name, dtype) pairs) with those sharing words with `context` first, and those
    `line` already uses last (a key is rarely wanted twice in one line); otherwise in their order."""
    context_words = words(context)

    def rank(item) -> int:
        name = str(item[0] if type(item) is tuple else item)
        if f"'{name}'" in line or f'"{name}"' in line or f".{name}" in line:
            return 1
        return -len(words(name) & context_words)

    return sorted(items, key=rank)


def leading_comments(above: str) -> str:
    """The comment lines right above the cursor's line (what the user says the line is for)."""
    lines = above.split("\n")
    keep = len(lines)
    while keep and lines[keep - 1].lstrip().startswith("#"):
        keep -= 1
    return "\n".join(lines[keep:])


def _outside_strings(text: str) -> tuple[list[tuple[int, str]], bool]:
    """The (index, character) pairs of `text` outside string literals (the quotes themselves left out),
    and whether it ends inside one. Roughly: quotes are counted, escapes and prefixes are not."""
    code, quote = [], None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        else:
            code.append((i, ch))
    return code, quote is not None


def in_string_or_comment(text: str) -> bool:
    """Roughly: is the end of `text` inside a string or a comment?"""
    code, in_string = _outside_strings(text)
    return any(ch == "#" for _, ch in code) or in_string


def top_level_arguments(arguments: str) -> list[str]:
    """The argument texts of a call so far, split at the commas outside brackets and strings."""
    parts, depth, start = [], 0, 0
    for i, ch in _outside_strings(arguments)[0]:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(arguments[start:i])
            start = i + 1
    return parts + [arguments[start:]]


def open_call(line: str) -> tuple[str, str] | None:
    """(the callee's dotted name, the argument text so far) of the innermost call open at the end of
    `line`, or None."""
    stack = []
    code, in_string = _outside_strings(line)
    for i, ch in code:
        if ch == "#":
            return None
        if ch in "([{":
            stack.append(i)
        elif ch in ")]}" and stack:
            stack.pop()
    if in_string or not stack or line[stack[-1]] != "(":
        return None
    start = stack[-1]
    callee = re.search(rf"(?<![\w.])({_DOTTED})\s*$", line[:start])
    return (callee.group(1), line[start + 1:]) if callee else None
