"""Our syntax-error explanations beside friendly-traceback's, on the same 20 beginner snippets.

    python bench/explanations_vs_friendly.py [--write docs/classroom.md]

Both run for real: our checker (exercises/checker.py: CPython's message, the category, the plain sentence of
exercises/explanations.py) and friendly-traceback (`pip install friendly_traceback`, in the `test` extra),
which is given the same SyntaxError from compile() and the snippet's source. Prints a Markdown table —
snippet, CPython's message, ours, friendly-traceback's explanation ("cause", with its "suggest" line
first) — and with --write puts it into the page between its two marker comments.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from jupyter_codegemma.exercises import CATEGORIES, check_code

START, END = "<!-- friendly-comparison:start -->", "<!-- friendly-comparison:end -->"

SNIPPETS = [  # the mistakes beginners make, one or two per category of the checker
    "if temperature > 25\n    weather = 'hot'\n",
    "temperature = 30\nif temperature > 25;\n    weather = 'hot'\n",
    "for i in range(3)\n    print(i)\n",
    "total = sum([1, 2, 3)\n",
    "message = 'Hello'\nprint(message\n",
    "name = 'Ada\nprint(name)\n",
    "greeting = hello world everyone\n",
    "def double(x):\nreturn 2 * x\n",
    "if ready:\n        start = 1\n    stop = 2\n",
    "numbers = [1, 2 3]\n",
    "def power(base exponent):\n    return base ** exponent\n",
    "if answer = 42:\n    print('yes')\n",
    "def double(x):\n    retrun 2 * x\n",
    "class = 'maths'\n",
    "if x > 0:\n    sign = 1\nelse if x < 0:\n    sign = -1\n",
    "print 'hello'\n",
    "area = 2x\n",
    "total = price tax\n",
    "price = 5 $\n",
    "text = \u201chello\u201d\n",
]


def ours(source: str) -> tuple[str, str, str]:
    """(CPython's message, our category, our text: the plain sentence, then the detail hint 2 adds if any)."""
    result = check_code(source)
    assert not result.ok, source
    detail = (result.explanation or "").replace(CATEGORIES[result.category], "").strip()
    text = result.plain + (f" *Hint 2 adds: {detail}*" if detail else "")
    return result.message, result.category, text


def friendly(source: str, number: int) -> str:
    """friendly-traceback's explanation of the SyntaxError compile() raises for `source`."""
    from friendly_traceback import core, source_cache

    filename = f"<snippet-{number}>"
    source_cache.cache.add(filename, source)  # where friendly-traceback looks up the lines of a file
    try:
        compile(source, filename, "exec")
    except SyntaxError:
        explanation = core.FriendlyTraceback(*sys.exc_info())
        explanation.compile_info()
        info = explanation.info
        text = "\n".join(part for part in (info.get("suggest"), info.get("cause") or info.get("generic")) if part)
        # its quotes of the source ("2: print(message" and a line of carets) are for a terminal, not a table
        return "\n".join(line for line in text.splitlines() if not _EXCERPT.match(line))
    raise AssertionError(f"{source!r} compiles")


_EXCERPT = re.compile(r"\s*(-*>)?\s*\d+\s*:|\s*\^[\s^]*$")


def _cell(text: str, code: bool = False) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return f"<code>{_escape(text)}</code>" if code else text


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def table() -> tuple[str, dict]:
    import friendly_traceback

    friendly_traceback.set_lang("en")
    rows = ["| # | snippet | CPython's message | ours (under Check) | friendly-traceback |", "|---|---|---|---|---|"]
    counts = {"snippets": len(SNIPPETS), "friendly_specific": 0, "categories": set()}
    for number, source in enumerate(SNIPPETS, 1):
        message, category, text = ours(source)
        theirs = friendly(source, number)
        counts["categories"].add(category)
        counts["friendly_specific"] += "could not" not in theirs.lower() and "cannot guess" not in theirs.lower()
        snippet = "<br>".join(_escape(line).replace(" ", "&nbsp;").replace("|", "\\|")
                              for line in source.rstrip("\n").splitlines())
        rows.append(f"| {number} | <code>{snippet}</code> | {_cell(message, code=True)} | "
                    f"**{category.replace('_', ' ')}**: {_cell(text)} | {_cell(theirs)} |")
    return "\n".join(rows), counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="PAGE", help="put the table into this Markdown page, between "
                        f"{START} and {END}")
    args = parser.parse_args()
    import friendly_traceback

    text, counts = table()
    print(text)
    print(f"\n{counts['snippets']} snippets, {len(counts['categories'])} of our categories; friendly-traceback "
          f"{friendly_traceback.__version__} gave a specific cause for {counts['friendly_specific']}")
    if args.write:
        page = Path(args.write)
        body = page.read_text(encoding="utf-8")
        if START not in body or END not in body:
            sys.exit(f"{page}: the markers {START} and {END} are not in the page")
        note = (f"\n*Produced by `python bench/explanations_vs_friendly.py --write {args.write}` with "
                f"friendly-traceback {friendly_traceback.__version__} on Python "
                f"{'.'.join(map(str, sys.version_info[:3]))}.*\n\n")
        body = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: f"{START}\n{note}{text}\n{END}", body,
                      flags=re.S)
        page.write_text(body, encoding="utf-8")
        print(f"wrote the table into {page}")


if __name__ == "__main__":
    main()
