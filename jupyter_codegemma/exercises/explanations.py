"""One plain sentence per kind of syntax error: what it means and where to look.

The checker reports CPython's own message word for word ("expected ':'", "'(' was never closed",
"unterminated string literal (detected at line 3)"): it is precise, it is what the student will meet
outside the classroom, and a search for it finds help. This table adds, beside it, one sentence a
beginner understands. The sentence is chosen by the checker's category, not by the message, because
CPython's message for some mistakes is the bare "invalid syntax" (`if x > 3;`, `retrun x`, `x = 2 3`).

`checker.CATEGORIES` holds the longer explanation shown at hint level 2; this is the short form the
widget shows under a failed Check (and `bench/explanations_vs_friendly.py` compares with friendly-traceback).
"""

from __future__ import annotations

__all__ = ["PLAIN", "beginner_message", "plain_sentence"]

# category -> what the mistake means, and what to look at; one sentence each.
PLAIN: dict[str, str] = {
    "unbalanced_brackets": (
        "A bracket ( [ or { is opened and never closed, or closed by a different kind of bracket: "
        "count the brackets on the marked line and the lines just above it."
    ),
    "unterminated_string": (
        "A piece of text has no closing quote, or words meant as text have no quotes at all: "
        "check that each string starts and ends with the same quote mark on the marked line."
    ),
    "missing_colon": (
        "A line that starts a block (if, else, for, while, def, ...) must end with a colon ':': "
        "look at the end of the marked line."
    ),
    "indentation": (
        "The spaces at the start of a line do not fit the block it belongs to: line it up with the "
        "other lines of its block, indent after a line ending in ':', and use spaces, not tabs."
    ),
    "missing_comma": (
        "Two items of a list, call or definition stand side by side without a comma between them: "
        "look for the missing ',' at the marked place."
    ),
    "assign_for_compare": (
        "A single '=' stores a value, but a condition needs '==' to compare two values: "
        "look at the '=' in the condition on the marked line."
    ),
    "keyword": (
        "A Python keyword (if, else, for, def, return, ...) is misspelled, used as a name, or used where "
        "it is not allowed: compare the marked word with the keyword you meant."
    ),
    "python2_print": (
        "In Python 3 print is a function, so what it prints goes in parentheses: write print(x), not print x."
    ),
    "missing_operator": (
        "Two values or names stand side by side with nothing between them: put the operator you mean "
        "(+, -, *, ...) or a comma between them, e.g. 2 * x, not 2x."
    ),
    "stray_character": (
        "The line has a character Python does not use here (such as $, ?, a backtick, curly quotes or an "
        "invisible space copied from a web page): delete it or retype it with the keyboard."
    ),
    "other": (
        "Python could not read this line: look at the marked place and the line just before it, "
        "and compare them with a similar line that works."
    ),
}


def plain_sentence(category: str | None) -> str:
    """The plain sentence for a checker category (the general one for an unknown or missing category)."""
    return PLAIN.get(category or "other", PLAIN["other"])


def beginner_message(message: str, category: str | None) -> str:
    """CPython's message as it is, then the plain sentence: `expected ':' — A line that starts a block ...`."""
    return f"{message} — {plain_sentence(category)}"
