"""The end of an exercise set: how many were solved, and per exercise solved or not, checks and hints."""

from __future__ import annotations

import html
import re
from typing import Sequence

from .model import Exercise
from .results import Results

_CELL = "style='padding:2px 10px 2px 0;text-align:left'"


def summary_html(exercises: Sequence[Exercise], results: Results) -> tuple[str, str]:
    """(title, body) of the summary, as the widget's HTML."""
    total = len(exercises)
    solved = sum(1 for ex in exercises if (rec := results.records.get(ex.id)) and rec.solved)
    rows, hints = [], 0
    for n, ex in enumerate(exercises, 1):
        rec = results.records.get(ex.id)
        hints += rec.hints if rec else 0
        done = "✓ solved" if rec and rec.solved else "not yet"
        used = f"{rec.hints} (up to level {rec.max_hint_level})" if rec and rec.hints else "none"
        rows.append(f"<tr><td>{n}</td><td>{html.escape(ex.title)}</td><td>{done}</td>"
                    f"<td>{rec.attempts if rec else 0}</td><td>{used}</td></tr>")
    table = ("<table class='codegemma-exercise-summary'><thead><tr>"
             + "".join(f"<th {_CELL}>{h}</th>" for h in ("#", "Exercise", "Solved", "Checks", "Hints"))
             + "</tr></thead><tbody>" + "".join(rows).replace("<td>", f"<td {_CELL}>") + "</tbody></table>")
    verdict = "All solved: well done!" if solved == total else "Start over to try the others again."
    title = f"<h3 style='margin:4px 0'>End of the set: {solved} of {total} solved</h3>"
    body = (f"<div role='status'><p>{solved} of {total} solved, {hints} "
            f"hint{'s' if hints != 1 else ''} used. {verdict}</p>{table}</div>")
    return title, body


def html_as_text(markup: str) -> str:
    """The summary's HTML as plain lines (a table row per line, cells separated by |)."""
    text = re.sub(r"</(p|tr|h3)>", "\n", markup)
    text = html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"</t[dh]>", " | ", text)))
    return "\n".join(line.rstrip(" |") for line in text.strip().splitlines())
