"""Prompts for `%%codegemma`: a request in plain words (and the cells before it) -> prompt; output -> code.

Instruction-tuned models ("-it" in their name) get Gemma's chat template (backends/chat.py) and answer
with a fenced code block. Base models (the default Gemma 3 270M, CodeGemma 2B/7B) only continue text, so
they get the context cells and the request followed by an open code fence (see base_prompt).
"""

from __future__ import annotations

import re
from typing import Sequence

FILL_MARKER = "<FILL>"
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def base_prompt(request: str, context_cells: Sequence[str] = (), language: str = "python") -> str:
    """A base-model prompt: the context cells, then the request, then an open code fence.

    Measured on Gemma 3 270M against a bare `# request` comment: the comment is continued with more
    comments, while an open fence after "Here is Python code to ..." gets code, and the model closes the
    fence when it is done (the natural place to stop).
    """
    text = request.strip()
    if text[:1].isupper() and not text[1:2].isupper():
        text = text[0].lower() + text[1:]  # "Sort a list" -> "... code to sort a list"
    cells = [cell.strip("\n") for cell in context_cells if cell.strip()]
    head = f"The notebook so far:\n\n```{language}\n" + "\n\n".join(cells) + "\n```\n\n" if cells else ""
    return f"{head}Here is {language.capitalize()} code to {text.rstrip('.')}:\n\n```{language}\n"


def chat_request(request: str, context_cells: Sequence[str] = (), language: str = "python") -> str:
    """The user turn for an instruction model."""
    text = f"Write {language} code for this request. Reply with one {language} code block and nothing else.\n\n"
    text += f"Request: {request.strip()}\n"
    cells = [cell.strip("\n") for cell in context_cells if cell.strip()]
    if cells:
        text += "\nThe notebook cells before it:\n```" + language + "\n" + "\n\n".join(cells) + "\n```\n"
    return text


def extract_code(text: str) -> str:
    """The code of a reply: the first fenced block if there is one, else the text itself."""
    match = _FENCE.search(text)
    return (match.group(2) if match else text).strip("\n")


def trim_base_output(text: str) -> str:
    """A base model goes on past the answer: stop at the closing fence, or at two blank lines."""
    text = text.split("```", 1)[0].split("\n\n\n", 1)[0]
    lines = text.rstrip().splitlines()
    # The model tends to follow its code with the next "# do something" request: drop that trailing comment.
    while lines and lines[-1].lstrip().startswith("#") and len(lines) > 1:
        lines.pop()
    return "\n".join(lines).rstrip()


def instruction_code_shape(text: str, final: bool) -> tuple[str, bool]:
    """An instruction model's answer so far -> (its code, complete?): it ends its turn by itself."""
    return extract_code(text), False


def base_code_shape(text: str, final: bool) -> tuple[str, bool]:
    """A base model's output so far -> (its code, complete?): done once it closes the code fence."""
    return trim_base_output(text), "```" in text


def split_fill(body: str) -> tuple[str, str]:
    """`--fill`: the code before and after the single <FILL> marker."""
    count = body.count(FILL_MARKER)
    if count != 1:
        raise ValueError(f"--fill needs exactly one {FILL_MARKER} marker in the cell, found {count}")
    prefix, suffix = body.split(FILL_MARKER)
    return prefix, suffix


def previous_code_cells(history: Sequence[str], n: int, current: str | None = None) -> list[str]:
    """The last `n` cells of the input history that hold code (not magics-only, not this cell)."""
    cells: list[str] = []
    for source in reversed(history):
        if len(cells) >= n:
            break
        if not source or not source.strip() or source == current:
            continue
        lines = [line.lstrip() for line in source.splitlines() if line.strip()]
        if lines[0].startswith("%%") or all(line.startswith(("%", "!")) for line in lines):
            continue
        cells.append(source)
    return cells[::-1]
