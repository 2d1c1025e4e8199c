"""How much of the notebook goes to the model, and what never does.

Everything sent is bounded twice: in characters by a `Budget` (tracebacks, sources, values each
have their own), then in tokens by `fit_prompt`, which retries the context at half the budget, a
quarter, ... until the prompt leaves room for the answer. Secrets (names like `api_key`, values
that look like tokens) are replaced by `<redacted>` before any of it is counted. What was sent is
shown back to the user (`context_section`, `render_prompt`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Sequence, TypeVar

from ...backends.chat import CONTROL_PIECES, decode_keeping_pieces
from ..safe_markdown import code_block, html_text

Material = TypeVar("Material")  # what a prompt is built from (prompts.Context)

CUT = "… [{n} characters cut] …"

# --- size limits -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Budget:
    """Character limits of the context parts; `fit_prompt` scales them down to fit the tokens."""

    source: int = 3000  # the cell's code
    traceback: int = 2400
    values: int = 1200  # all "name = repr" lines together
    value: int = 160  # one repr
    names: int = 12  # how many names
    history: int = 4000  # one chat turn as stored

    def scaled(self, factor: float) -> "Budget":
        return Budget(*(max(int(v * factor), 8) if f.name != "names" else max(int(v * factor), 2)
                        for f, v in zip(dataclasses.fields(self), dataclasses.astuple(self))))


def truncate(text: str, limit: int, keep: str = "both") -> str:
    """`text` in at most about `limit` characters: the head, the tail, or both ends, with a marker."""
    if len(text) <= limit:
        return text
    limit = max(limit, 1)
    if keep == "head":
        return text[:limit] + " " + CUT.format(n=len(text) - limit)
    if keep == "tail":
        return CUT.format(n=len(text) - limit) + " " + text[-limit:]
    head = limit // 2
    tail = limit - head
    return text[:head] + "\n" + CUT.format(n=len(text) - limit) + "\n" + text[-tail:]


def excerpt(source: str, limit: int, line: int | None = None) -> str:
    """A long cell cut to `limit` characters around line `line` (1-based), whole lines, marked."""
    if len(source) <= limit or line is None:
        return truncate(source, limit)
    lines = source.splitlines()
    line = min(max(line, 1), len(lines)) - 1
    lo = hi = line
    size = len(lines[line]) + 1
    while True:  # grow the window both ways, one line at a time, while it fits
        grown = False
        for j in (lo - 1, hi + 1):
            if 0 <= j < len(lines) and size + len(lines[j]) + 1 <= limit:
                size += len(lines[j]) + 1
                lo, hi = min(lo, j), max(hi, j)
                grown = True
        if not grown:
            break
    body = [truncate(text, limit, "head") for text in lines[lo:hi + 1]]
    if lo > 0:
        body.insert(0, f"# … [{lo} lines above cut] …")
    if hi < len(lines) - 1:
        body.append(f"# … [{len(lines) - 1 - hi} lines below cut] …")
    return "\n".join(body)


SCALES = (1.0, 0.5, 0.25, 0.125, 0.0625)  # the budget's scales `fit_prompt` tries, in order


def contexts_at_scales(make: Callable[[Budget], Material], budget: Budget = Budget()) -> list[Material]:
    """The context cut to each of SCALES of the budget (built up front, on the kernel's main thread)."""
    return [make(budget.scaled(scale)) for scale in SCALES]


def fit_prompt(candidates: Sequence, build: Callable, count_tokens: Callable[[object], int], limit: int):
    """(prompt, tokens, index): the first candidate whose `build(candidate)` has at most `limit` tokens.

    The last (smallest) one is returned even when it is still too long; the engine then drops its start.
    """
    for index, candidate in enumerate(candidates):
        prompt = build(candidate)
        tokens = count_tokens(prompt)
        if tokens <= limit:
            return prompt, tokens, index
    return prompt, tokens, index


# --- redaction ----------------------------------------------------------------------------------------

_SECRET_NAME = re.compile(r"pass(word|wd|phrase)?|secret|token|api_?key|apikey|auth|credential|private_?key",
                          re.IGNORECASE)
_SECRET_VALUES = [re.compile(p) for p in (
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|\Z)",
    r"\bsk-[A-Za-z0-9_-]{16,}",  # OpenAI-style keys
    r"\b(ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}",  # GitHub tokens
    r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key ids
    r"\bAIza[0-9A-Za-z_-]{35}\b",  # Google API keys
    r"\bxox[abprs]-[A-Za-z0-9-]{10,}",  # Slack tokens
    r"\bhf_[A-Za-z0-9]{30,}",  # Hugging Face tokens
    r"\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}",  # JSON web tokens
)]
# `api_key = "..."`, `password: '...'`, `"token": "..."`: keep the name, hide the string.
_SECRET_ASSIGNMENT = re.compile(
    r"""(?P<name>[\w.\[\]'"-]*(?:pass(?:word|wd|phrase)?|secret|token|api_?key|apikey|credential|private_?key)"""
    r"""[\w'"\]]*\s*[:=]\s*)(?P<q>[rbuRBU]{0,2}['"])(?P<value>[^'"\n]+)(?P=q)""", re.IGNORECASE)
REDACTED = "<redacted>"


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def redact(text: str) -> str:
    """`text` with things that look like credentials replaced by <redacted>."""
    text = _SECRET_ASSIGNMENT.sub(lambda m: m["name"] + m["q"] + REDACTED + m["q"][-1], text)
    for pattern in _SECRET_VALUES:
        text = pattern.sub(REDACTED, text)
    return text


# --- showing what was sent -----------------------------------------------------------------------------


def render_prompt(tokenizer, ids: Sequence[int]) -> str:
    """Prompt ids as text, control tokens (<bos>, <start_of_turn>, ...) written out as their pieces."""
    control = {tokenizer.bos_id, tokenizer.eos_id}
    for piece in CONTROL_PIECES:
        i = tokenizer.piece_to_id(piece)
        if i is not None:
            control.add(i)
    return decode_keeping_pieces(ids, tokenizer.decode, {i: tokenizer.id_to_piece(i) for i in control})


def context_section(context_text: str, tokens: int, summary: str) -> str:
    """The collapsible "Context sent to the model" part of an answer."""
    # Only this fixed markup is HTML: the summary is escaped, the context (code, tracebacks, values the
    # model saw) is a code block nothing in it can close.
    return (f"\n\n<details><summary>Context sent to the model: {html_text(summary)}; {int(tokens)} tokens"
            f"</summary>\n\n{code_block(context_text, 'text')}\n\n</details>\n")
