"""The hint ladder: 1. the concept (what kind of mistake, and why it is one), 2. where (line and caret) and
what kind, 3. a verified fix, shown as a diff.

Levels 1 and 2 come from `check_code` alone: the concept first, so a student who knows what to look for
can find the place; the place next. Level 3 is a fix that passes the exercise's tests: the repair
search's (repair.py), ranked by the model, or else one of the model's own samples (`model_fix` below,
shown only when they agree). Nothing unverified is shown; "no confident suggestion" is the honest answer
when nothing passes.
"""

from __future__ import annotations

import difflib
import html
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from .checker import CATEGORIES, CATEGORY_NAMES, CheckResult, check_code

__all__ = ["HINT_LEVELS", "ModelFix", "concept_text", "engine_sampler", "fix_prompt", "hint", "model_fix",
           "normalise", "unified_diff", "what_text", "where_html", "where_text"]

HINT_LEVELS = 3
NO_CONFIDENT = "No confident suggestion from the model: look again at the marked line and the explanation."

# sample(prompt, *, max_new_tokens, temperature, seed) -> text
Sampler = Callable[..., str]


def where_text(source: str, result: CheckResult, context: int = 1) -> str:
    """Level 1: 'Line 3, column 9' and the lines around it, numbered, with a caret under the place."""
    if result.ok:
        return "The code parses: no syntax error to point at."
    lines = source.splitlines() or [""]
    first, last = max(result.line - context, 1), min(result.line + context, len(lines))
    width = len(str(last))
    out = [f"Line {result.line}, column {result.col}:"]
    for n in range(first, last + 1):
        mark = ">" if n == result.line else " "
        out.append(f"{mark}{n:>{width}} | {lines[n - 1]}")
        if n == result.line:
            out.append(" " + " " * width + " | " + _caret_pad(lines[n - 1], result.col) + "^")
    return "\n".join(out)


def _caret_pad(line: str, col: int) -> str:
    return "".join("\t" if ch == "\t" else " " for ch in line[: max(col - 1, 0)])


def where_html(source: str, result: CheckResult | None) -> str:
    """The code with line numbers, the error line marked and a caret under the column (for the widget)."""
    lines = source.splitlines() or [""]
    width = len(str(len(lines)))
    rows = []
    for n, text in enumerate(lines, 1):
        bad = result is not None and not result.ok and n == result.line
        style = "background:#fde2e1;" if bad else ""
        label = ' aria-label="error on this line"' if bad else ""
        rows.append(f'<div style="{style}"{label}><span style="color:#888;user-select:none">{n:>{width}} </span>'
                    f"{html.escape(text) or ' '}</div>")
        if bad:
            pad = html.escape(_caret_pad(text, result.col)).replace("\t", "    ")
            rows.append(f'<div style="color:#c00;font-weight:bold"><span style="user-select:none">'
                        f"{' ' * (width + 1)}</span>{pad}^ {html.escape(result.message or '')}</div>")
    return ('<pre class="codegemma-exercise-code" style="font-family:monospace;margin:0;padding:4px;'
            'border:1px solid #ddd">' + "".join(rows) + "</pre>")


def _kind(result: CheckResult, category: str | None) -> tuple[str, str]:
    """The kind of mistake to name, and a note naming the exercise's kind when that is another one.

    `category` is the exercise's: it names the mistake when the checker agrees or cannot tell (Python's
    bare "invalid syntax" for a ';' typed for the ':'); when the checker finds another kind of mistake
    (a new one made while fixing), that one is named, and the exercise's beside it."""
    found = result.category or "other"
    if category in CATEGORIES and category != "other" and found in (category, "other"):
        return category, ""
    also = (f" (this exercise is about {CATEGORY_NAMES[category]})"
            if category in CATEGORIES and category not in ("other", found) else "")
    return found, also


def concept_text(result: CheckResult, category: str | None = None) -> str:
    """Level 1: the concept — the kind of mistake and why it is one, without saying where."""
    if result.ok:
        return "The code parses: no syntax error to explain."
    kind, also = _kind(result, category)
    explanation = result.explanation if kind == (result.category or "other") else CATEGORIES[kind]
    return f"The mistake: {CATEGORY_NAMES[kind]}{also}.\n\n{explanation}"


def what_text(source: str, result: CheckResult, category: str | None = None, *, place: bool = True) -> str:
    """Python's message and the kind of mistake in a line each; `place`: led by the line and column."""
    if result.ok:
        return "The code parses: no syntax error to explain."
    kind, also = _kind(result, category)
    where = f"Line {result.line}, column {result.col}: " if place else ""
    return f"{where}Python says \"{result.message}\".\nThe mistake: {CATEGORY_NAMES[kind]}{also}."


def hint(level: int, source: str, result: CheckResult | None = None, *, category: str | None = None) -> str:
    """Hint `level` (1 or 2) as text; level 3 is a verified fix (repair.py, `model_fix`). `category`: the
    exercise's."""
    result = result or check_code(source)
    if result.ok:
        return "The code parses. Press Check to run the tests."
    if level <= 1:
        return concept_text(result, category)
    if level == 2:
        return f"{where_text(source, result)}\n\n{what_text(source, result, category, place=False)}"
    raise ValueError("level 3 is the model's fix: use model_fix()")


# --- level 3 -------------------------------------------------------------------------------------------------


@dataclass
class ModelFix:
    fix: str | None  # the agreed fixed code, or None: no confident suggestion
    diff: str  # unified diff from the student's code to the fix ("" without a fix)
    reason: str  # why it was shown or withheld
    samples: int = 0
    parsed: int = 0  # candidates that parse
    close: int = 0  # ... and change few characters
    agreeing: int = 0  # ... and equal the chosen one
    candidates: list[str] = field(default_factory=list)
    # False when the model gave no answer (it failed, timed out, was cancelled): asking again may help,
    # so the widget does not keep it as the answer for this code
    answered: bool = True
    what: str = ""  # the edits in words ("line 2: insert ':' after '25'"), for a fix from the repair search

    @property
    def shown(self) -> bool:
        return self.fix is not None

    def message(self) -> str:
        if self.fix and self.what:
            return f"A fix that passes the exercise's tests ({self.what}):\n{self.diff}"
        return f"A suggested fix (check it before you use it):\n{self.diff}" if self.fix else NO_CONFIDENT


def normalise(code: str) -> str:
    """Ignore trailing spaces and blank lines at the ends when comparing candidates."""
    return "\n".join(line.rstrip() for line in code.strip("\n").splitlines()) + "\n"


def changed_chars(a: str, b: str) -> int:
    """Characters inserted, deleted or replaced to turn a into b (from difflib's opcodes)."""
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in ops if tag != "equal")


def unified_diff(before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile="your code", tofile="suggested fix", n=1))


def fix_prompt(source: str, result: CheckResult) -> str:
    """A completion-style prompt for a base model (no chat template, no FIM)."""
    return (f"The following Python code has a syntax error on line {result.line}: {result.message}\n\n"
            f"```python\n{source.rstrip()}\n```\n\n"
            f"Here is the fixed version of this code, with only that error corrected:\n\n```python\n")


def _extract(text: str) -> str:
    return text.split("```", 1)[0]


def model_fix(sample: Sampler, source: str, result: CheckResult | None = None, *, n: int = 5,
              min_agree: int = 2, temperature: float = 0.7, max_change: int | None = None,
              verify: Callable[[str], bool] | None = None) -> ModelFix:
    """Level 3: sample up to `n` fixes; return the one that parses, changes at most `max_change` characters
    (default: max(8, 10% of the code)), passes `verify` and is the first that `min_agree` samples agree on; else no confident suggestion."""
    result = result or check_code(source)
    if result.ok:
        return ModelFix(None, "", "the code already parses")
    source_n = normalise(source)
    limit = max_change if max_change is not None else max(8, len(source_n) // 10)
    prompt = fix_prompt(source, result)
    budget = len(source_n) // 2 + 48  # tokens: a fix is about as long as the code; ~3 chars per token
    votes: Counter[str] = Counter()
    fix = ModelFix(None, "", "")
    for i in range(n):
        # the first sample is greedy, the rest are sampled with seeds 1..n-1 (deterministic per call)
        text = _extract(sample(prompt, max_new_tokens=budget, temperature=0.0 if i == 0 else temperature, seed=i))
        candidate = normalise(text)
        fix.samples += 1
        fix.candidates.append(candidate)
        if not check_code(candidate).ok:
            continue
        fix.parsed += 1
        if candidate == source_n or changed_chars(source_n, candidate) > limit:
            continue
        fix.close += 1
        votes[candidate] += 1
        if votes[candidate] >= min_agree:
            break  # the first candidate that `min_agree` samples agree on wins: stop sampling
    ranked = votes.most_common(2)
    if not ranked:
        fix.reason = f"none of {fix.samples} samples parsed and changed at most {limit} characters"
        return fix
    best, count = ranked[0]
    if count < min_agree or (len(ranked) > 1 and ranked[1][1] == count):
        fix.reason = f"the samples did not agree ({count} of {fix.samples} identical)"
        return fix
    if verify is not None and not verify(best):
        fix.reason = "the agreed fix does not pass the exercise's tests"
        return fix
    fix.fix, fix.agreeing = best, count
    fix.diff = unified_diff(source_n, best)
    fix.reason = f"{count} of {fix.samples} samples agree; it parses and changes {changed_chars(source_n, best)} characters"
    return fix


def engine_sampler(engine, cancel=None) -> Sampler:
    """A `Sampler` over a backend: each sample stops at the closing code fence."""
    from ..backends.base import GenerationResult, SamplingParams, shaped_stream

    def until_fence(text: str, final: bool) -> tuple[str, bool]:
        return text, "```" in text

    def sample(prompt: str, *, max_new_tokens: int, temperature: float, seed: int) -> str:
        sampling = SamplingParams(temperature=temperature, top_p=0.95 if temperature else None, seed=seed)
        result = GenerationResult(prompt_ids=[], ids=[], text="")

        def start(stop):
            return engine.generate(prompt, max_new_tokens=max_new_tokens, truncate=True, cancel=stop, sampling=sampling)

        for _ in shaped_stream(start, until_fence, result, cancel):
            pass
        return result.text

    return sample
