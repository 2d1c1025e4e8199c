"""Markdown from text we did not write (a model's answer, a traceback, a cell): formatting kept, nothing live.

JupyterLab renders the Markdown outputs of cells run in the session as trusted, without sanitizing,
so raw HTML in them runs (an `<img onerror=...>` fires). Every output that shows model text goes
through this module:

- `untrusted_markdown(text)`: the text's Markdown (emphasis, lists, headings, code spans and fenced
  code blocks) is kept; every `<` outside code is written as `&lt;`, so no tag, attribute or HTML
  comment is ever parsed and an autolink `<scheme:...>` is plain text; a link or image whose target
  is not `http(s)://` or `mailto:` is shown as text; an unclosed code fence is closed.
- `code_block(text, language)`: text as one fenced code block that nothing in it can close.
- `diff_block(diff)`: a unified diff as our own HTML `<pre>` block, every line escaped, added lines
  green and removed ones red (JupyterLab's Markdown highlighter gives a ```` ```diff ```` block's
  lines no colour).
- `html_text(text)`: text for our own HTML (escaped, quotes included).

Our own markup around such text (the collapsed *context sent* section) is fixed strings.
"""

from __future__ import annotations

import html
import re

SAFE_SCHEMES = ("http://", "https://", "mailto:")
_FENCE_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
# `](target` of an inline link or image, and `[label]: target` of a link reference definition.
_INLINE_TARGET = re.compile(r"\]\(\s*<?([^)\s>]*)")
_DEFINITION = re.compile(r"^( {0,3})\[([^\]]+)\]:\s*<?(\S*)")


def html_text(text: str) -> str:
    return html.escape(text, quote=True)


def code_block(text: str, language: str = "") -> str:
    """A fenced block whose fence is longer than any run of backticks inside, so it cannot be closed early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip(chr(10))}\n{fence}"


# JupyterLab's theme colours (light and dark themes define them), with a fallback elsewhere.
_DIFF_STYLES = {"+": "color: var(--jp-success-color1, #1a7f37)", "-": "color: var(--jp-error-color1, #cf222e)",
                "@": "color: var(--jp-info-color1, #0969da)", "header": "font-weight: bold"}


def diff_block(diff: str) -> str:
    """A unified diff (difflib's, lines without "\n") as an HTML `<pre>` block for Markdown: each line
    escaped, in a coloured span by its first character; nothing in the text can end the block (it has
    no `<` left) or become markup. A renderer that drops styles shows the plain diff."""
    lines = diff.rstrip("\n").split("\n")
    out = []
    for i, line in enumerate(lines):
        if i < 2 and line.startswith(("--- ", "+++ ")):
            style = _DIFF_STYLES["header"]
        else:
            style = _DIFF_STYLES.get(line[:1])
        text = html_text(line)
        out.append(f'<span style="{style}">{text}</span>' if style else text)
    return "<pre><code>" + "\n".join(out) + "</code></pre>"


def untrusted_markdown(text: str) -> str:
    """Markdown a person can read, with no HTML and no link that runs anything (see the module doc)."""
    out: list[str] = []
    fence: str | None = None  # the open fence's character run while inside a fenced block
    for line in text.split("\n"):
        if fence is not None:
            stripped = line.strip()
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                fence = None
            out.append(line)  # code: shown as written
            continue
        opened = _FENCE_OPEN.match(line)
        if opened and not (opened.group(2)[0] == "`" and "`" in opened.group(3)):
            fence = opened.group(2)
            out.append(opened.group(1) + opened.group(2) + _info_string(opened.group(3)))
            continue
        out.append(_prose_line(line))
    if fence is not None:
        out.append(fence)  # the model stopped inside a block: close it here, not in our own markup
    return "\n".join(out)


def _info_string(info: str) -> str:
    """A fence's language word only (the rest of an info string is never needed)."""
    word = info.strip().split(maxsplit=1)[0] if info.strip() else ""
    return re.sub(r"[^\w+.#-]", "", word)


def _prose_line(line: str) -> str:
    """One line outside fenced code: code spans as they are, `<` escaped elsewhere, unsafe links as text."""
    definition = _DEFINITION.match(line)
    if definition and not _safe_target(definition.group(3)):
        line = definition.group(1) + "\\[" + line[definition.end(1) + 1:]
    pieces = []
    for i, part in enumerate(_split_code_spans(line)):
        if i % 2:  # a code span, backticks included: its content is shown as text by any renderer
            pieces.append(part)
            continue
        part = part.replace("<", "&lt;")
        part = _INLINE_TARGET.sub(lambda m: m.group(0) if _safe_target(m.group(1)) else "]\\(" + m.group(0)[2:], part)
        pieces.append(part)
    return "".join(pieces)


def _safe_target(target: str) -> bool:
    target = html.unescape(target).strip().lower()
    return target.startswith(SAFE_SCHEMES) or target.startswith("#")


def _split_code_spans(line: str) -> list[str]:
    """[prose, code span, prose, code span, ..., prose]: a span opens with a run of backticks and closes
    with a run of the same length (CommonMark); an unmatched run is prose."""
    parts, prose_start, i = [], 0, 0
    while i < len(line):
        if line[i] != "`":
            i += 1
            continue
        j = i
        while j < len(line) and line[j] == "`":
            j += 1
        run = line[i:j]
        close = re.compile(rf"(?<!`){run}(?!`)").search(line, j)
        if close is None:
            i = j
            continue
        parts.extend([line[prose_start:i], line[i:close.end()]])
        prose_start = i = close.end()
    parts.append(line[prose_start:])
    return parts
