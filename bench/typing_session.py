"""The typing session of bench/latency.py: a user typing the last cell of a real notebook
(bench/data/bike_share.ipynb) one character at a time, the prefixes the editor asks about at each
word boundary, and how many of those requests typing through a suggestion saves (issue 17).
"""

from __future__ import annotations

import json
from pathlib import Path

NOTEBOOK = Path(__file__).parent / "data" / "bike_share.ipynb"
CELL_SEPARATOR = "\n\n"  # as labextension/src/context.ts joins cells


def cell_text(cell: dict) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def _as_context(cell: dict) -> str | None:
    text = cell_text(cell)
    if not text.strip():
        return None
    if cell["cell_type"] == "code":
        return text.rstrip()
    if cell["cell_type"] == "markdown":
        return "\n".join(f"# {line}" if line.strip() else "#" for line in text.rstrip().split("\n"))
    return None


def _session_text() -> tuple[str, str]:
    """The context the model sees above the typed cell, and the cell's text."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    above = [t for t in map(_as_context, cells[:-1]) if t is not None]
    return CELL_SEPARATOR.join(above) + CELL_SEPARATOR, cell_text(cells[-1])


def pauses(typed: str) -> list[int]:
    """How many characters are typed at each pause: where a word just ended (the editor's debounce
    fires after the user pauses there)."""
    offsets = []
    for i in range(1, len(typed) + 1):
        c, before = typed[i - 1], typed[i - 2] if i > 1 else " "
        if (before.isalnum() or before == "_") and not (c.isalnum() or c == "_"):
            offsets.append(i)
    return offsets


def typing_session(max_requests: int) -> tuple[list[str], int]:
    """The prefixes at each word boundary while typing the notebook's last cell, and the number
    of characters typed."""
    context, typed = _session_text()
    prefixes = [context + typed[:i] for i in pauses(typed)]
    step = max(1, len(prefixes) // max_requests) if max_requests else 1
    return prefixes[::step][:max_requests or None], len(typed)


def keeps_suggestion(suggestion: str, typed: str) -> bool:
    """Whether the ghost text stays after `typed` was typed over a finished `suggestion`: it starts
    with it and something is left (typeThrough.ts, remainderAfter with complete=True)."""
    return suggestion.startswith(typed) and len(suggestion) > len(typed)


def request_count(complete_line) -> dict:
    """Type the whole cell; at each pause ask for a suggestion unless the last one is still on show.
    `complete_line(prefix)` returns a suggestion's text. Before typing through, every pause asks."""
    context, typed = _session_text()
    at_pauses = pauses(typed)
    asked, anchor, suggestion = 0, None, ""
    for i in at_pauses:
        if anchor is not None and keeps_suggestion(suggestion, typed[anchor:i]):
            continue
        suggestion, anchor = complete_line(context + typed[:i]), i
        asked += 1
    return {"typed_chars": len(typed), "requests_before": len(at_pauses), "requests_after": asked,
            "requests_per_char_before": len(at_pauses) / len(typed), "requests_per_char_after": asked / len(typed)}


def print_request_count(counts: dict) -> None:
    print(f"requests per typed character ({counts['typed_chars']} typed, a request at each word boundary "
          f"without a suggestion on show): {counts['requests_per_char_before']:.3f} before typing through "
          f"({counts['requests_before']} requests), {counts['requests_per_char_after']:.3f} after "
          f"({counts['requests_after']})")
