"""The repair search behind level-3 hints: small edits of the student's code, verified by the exercise's tests,
ranked by the model.

    found = search_repairs(exercise.broken, exercise.tests, scorer=engine_scorer(engine))
    found.best.source, found.best.what      # the fixed program, "line 2: insert ':' after '25'"

1. Candidates (repair_edits.py): one-token edits of the lines around the reported error (every line of a
   short program), and the known beginner patterns. An edit that still fails to compile but moves the
   error further on is extended by a second edit around the new error.
2. Cheap filter: `compile()` in this process (compiling never runs code).
3. Verification: every survivor runs the exercise's tests in the sandbox (sandbox_batch: one process,
   a forked child per candidate, with per-candidate limits). Only candidates that pass are ever offered.
4. Ranking: by edit cost (one edit before two), then by the model's log-likelihood of the whole fixed
   program (`Backend.score`: one scoring pass over the verified candidates, no generation). Without a
   scorer — a server that cannot score — by edit cost and changed characters alone.
5. When the search finds nothing, the model's own sampled fixes (`samples`) join the pool, verified the
   same way.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from .checker import check_code
from .checker import CheckResult
from .hints import ModelFix, changed_chars, fix_prompt, normalise, unified_diff
from .repair_edits import Edit, program_edits
from .sandbox import Limits
from .sandbox_batch import CANDIDATE_LIMITS, run_many

__all__ = ["Repair", "SearchLimits", "SearchResult", "as_model_fix", "engine_scorer", "model_samples",
           "search_repairs"]

# texts -> one log-likelihood each (higher is likelier), or None where the backend cannot score
Scorer = Callable[[Sequence[str]], "Sequence[float] | None"]
# () -> candidate fixed programs sampled from the model (asked only when the search finds nothing)
Sampler = Callable[[], Sequence[str]]

SCORE_PREFIX = "```python\n"  # the scored text is the program as a code block: how the model saw code


@dataclass(frozen=True)
class SearchLimits:
    short_program_lines: int = 25  # up to this many lines, edits are tried on every line
    window: int = 2  # otherwise on the error line and this many lines around it
    second_round: int = 30  # first edits that move the error further on, extended by a second edit
    max_verified: int = 60  # candidates run against the tests, at most
    max_scored: int = 4  # verified candidates with the fewest edits that the model ranks, at most
    max_timeouts: int = 3  # the tests (or the code) loop: stop verifying after this many time-outs
    candidate: Limits = CANDIDATE_LIMITS


@dataclass(frozen=True)
class Repair:
    source: str  # the fixed program (normalised)
    what: tuple[str, ...]  # the edits, in words
    cost: int  # number of edits
    chars: int  # characters changed
    origin: str = "search"  # "search" or "model sample"
    pattern: bool = False  # a known beginner pattern (print's parentheses, 'else if', quotes), not a lone token
    distance: int = 0  # lines between the (first) edit and the reported error
    score: float | None = None  # the model's log-likelihood (None: not scored)


@dataclass
class SearchResult:
    fixes: list[Repair]  # verified, best first
    tried: int = 0  # candidate programs generated
    compiled: int = 0  # ... that compile
    verified: int = 0  # ... run against the tests
    timeouts: int = 0
    ranked_by: str = "edit size"  # "model and edit size" when a scorer ranked several candidates
    model_changed_pick: bool = False  # the model's ranking chose a fix that edit size alone would not
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> Repair | None:
        return self.fixes[0] if self.fixes else None


def _compiles(source: str) -> tuple[bool, tuple[int, int]]:
    """Whether `source` compiles, and where it fails ((line, column), the end of the code when it does)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(source, "<candidate>", "exec", dont_inherit=True)
        return True, (10**9, 0)
    except (SyntaxError, ValueError) as e:
        return False, (getattr(e, "lineno", None) or 0, getattr(e, "offset", None) or 0)


def _rows(lines: list[str], line: int, limits: SearchLimits) -> list[int]:
    if len(lines) <= limits.short_program_lines:
        return list(range(len(lines)))
    lo, hi = max(line - 1 - limits.window, 0), min(line + limits.window, len(lines))
    return list(range(lo, hi))


def _first_round(source: str, limits: SearchLimits, seen: set[str]) -> tuple[list, list, int]:
    """Single edits: those that compile, and those that move the error further on (furthest first)."""
    result = check_code(source)
    lines = source.rstrip("\n").split("\n")
    found: list[tuple[Edit, tuple[str, ...]]] = []
    progress: list[tuple[tuple[int, int], Edit]] = []
    origin = (result.line or 0, result.col or 0)
    tried = 0
    for edit in program_edits(lines, _rows(lines, result.line or 1, limits)):
        if edit.source in seen:
            continue
        seen.add(edit.source)
        tried += 1
        ok, where = _compiles(edit.source)
        if ok:
            found.append((edit, (edit.what,)))
        elif where > origin:
            progress.append((where, edit))
    progress.sort(key=lambda p: p[0], reverse=True)
    return found, progress[: limits.second_round], tried


def _second_round(progress, seen: set[str]) -> tuple[list, int]:
    """A second edit, around the new error, after each first edit that moved the error on."""
    found: list[tuple[Edit, tuple[str, ...]]] = []
    tried = 0
    for where, first in progress:
        lines = first.source.rstrip("\n").split("\n")
        rows = [r for r in range(where[0] - 2, where[0] + 1) if 0 <= r < len(lines)]
        for edit in program_edits(lines, rows):
            if edit.source in seen:
                continue
            seen.add(edit.source)
            tried += 1
            if _compiles(edit.source)[0]:
                found.append((Edit(edit.source, edit.what, first.cost + edit.cost, first.pattern and edit.pattern,
                                   first.row), (first.what, edit.what)))
    return found, tried


def _pool(source: str, found) -> list[Repair]:
    line = (check_code(source).line or 1) - 1
    pool = [Repair(normalise(e.source), what, e.cost, changed_chars(source, normalise(e.source)), pattern=e.pattern,
                   distance=abs(e.row - line) if e.row >= 0 else 0) for e, what in found]
    return sorted(pool, key=_size_key)


def _size_key(r: "Repair") -> tuple:
    """The ranking by edit size alone: fewer edits, a known beginner pattern first, fewer characters, closer
    to where Python reported the error."""
    return (r.cost, not r.pattern, r.chars, r.distance)


def search_repairs(source: str, tests: str = "", *, scorer: Scorer | None = None, samples: Sampler | None = None,
                   limits: SearchLimits = SearchLimits()) -> SearchResult:
    """Verified fixes of `source` for an exercise with `tests`, best first (see the module's docstring)."""
    started = time.monotonic()
    source = normalise(source)
    out = SearchResult([])
    if check_code(source).ok:
        out.notes.append("the code already parses")
        return out
    seen = {source}
    found, progress, out.tried = _first_round(source, limits, seen)
    out.compiled = len(found)
    passed = _verify(_pool(source, found)[: limits.max_verified], tests, limits, out)
    if not passed and progress and out.timeouts < limits.max_timeouts:
        found, tried = _second_round(progress, seen)
        out.tried += tried
        out.compiled += len(found)
        passed = _verify(_pool(source, found)[: limits.max_verified], tests, limits, out)
    if not passed and samples is not None and out.timeouts < limits.max_timeouts:
        sampled = []
        for text in samples():
            fixed = normalise(text)
            if fixed != source and fixed not in {r.source for r in sampled} and _compiles(fixed)[0]:
                sampled.append(Repair(fixed, ("the model's own fix",), 1 + changed_chars(source, fixed) // 8,
                                      changed_chars(source, fixed), "model sample"))
        passed = _verify(sampled, tests, limits, out)
    if not passed and out.timeouts >= limits.max_timeouts:
        out.notes.append(f"stopped after {out.timeouts} candidates timed out: the code or the tests do not finish")
    out.fixes = _rank(passed, scorer, limits, out)
    out.seconds = time.monotonic() - started
    return out


def _verify(pool: list[Repair], tests: str, limits: SearchLimits, out: SearchResult) -> list[Repair]:
    """The candidates that pass the tests, in batches (a batch stops early once time-outs pile up)."""
    passed: list[Repair] = []
    batch = 16
    for i in range(0, len(pool), batch):
        left = limits.max_timeouts - out.timeouts
        if left <= 0:
            break
        chunk = pool[i:i + batch]
        verdicts = run_many([r.source for r in chunk], tests, limits.candidate,
                            deadline_s=len(chunk) * (limits.candidate.wall_s + 0.2) + 5.0, max_timeouts=left)
        out.verified += len(chunk)
        out.timeouts += sum(v.status == "timeout" for v in verdicts)
        passed += [r for r, v in zip(chunk, verdicts) if v.passed]
    return passed


def _rank(passed: list[Repair], scorer: Scorer | None, limits: SearchLimits, out: SearchResult) -> list[Repair]:
    """Fewer edits first; among the fixes with the fewest edits, the one the model finds likelier (without a
    scorer: a known beginner pattern, then fewer changed characters)."""
    by_size = sorted(passed, key=_size_key)
    tier = [r for r in by_size if r.cost == by_size[0].cost][: limits.max_scored] if by_size else []
    if len(tier) < 2 or scorer is None:
        return by_size
    scores = scorer([r.source for r in tier])
    if scores is None:
        out.notes.append("the backend cannot score text: ranked by edit size alone")
        return by_size
    scored = sorted((replace(r, score=float(s)) for r, s in zip(tier, scores)), key=lambda r: -r.score)
    out.ranked_by = "model and edit size"
    out.model_changed_pick = scored[0].source != tier[0].source
    return scored + by_size[len(tier):]


def engine_scorer(engine) -> Scorer:
    """A Scorer over a backend's `score` (None where it has none, or where it says it cannot score)."""
    score = getattr(engine, "score", None)

    def scorer(programs: Sequence[str]) -> Sequence[float] | None:
        if score is None:
            return None
        return score([SCORE_PREFIX + p for p in programs])

    return scorer


def model_samples(sample, source: str, result: CheckResult | None = None, *, n: int = 5,
                  temperature: float = 0.7) -> list[str]:
    """`n` fixes written by the model (the first greedy, then sampled with seeds 1..n-1): unverified
    candidates for the pool. `sample(prompt, *, max_new_tokens, temperature, seed) -> text`."""
    result = result or check_code(source)
    budget = len(normalise(source)) // 2 + 48  # tokens: a fix is about as long as the code; ~3 chars per token
    prompt = fix_prompt(source, result)
    return [sample(prompt, max_new_tokens=budget, temperature=0.0 if i == 0 else temperature, seed=i)
            .split("```", 1)[0] for i in range(n)]


def as_model_fix(found: SearchResult, source: str) -> ModelFix:
    """The search's best verified fix as level 3 shows it (a diff), or why there is none."""
    best = found.best
    if best is None:
        reason = "no small edit of the code passes the exercise's tests"
        if found.notes:
            reason += f" ({'; '.join(found.notes)})"
        return ModelFix(None, "", reason, candidates=[])
    source_n = normalise(source)
    how = "; ".join(best.what)
    ranked = f", ranked by {found.ranked_by}" if len(found.fixes) > 1 else ""
    notes = "".join(f"; {note}" for note in found.notes)
    return ModelFix(best.source, unified_diff(source_n, best.source),
                    f"{how} — it passes the tests ({len(found.fixes)} verified fix(es){ranked}{notes})",
                    samples=found.tried, parsed=found.compiled, close=found.verified, agreeing=len(found.fixes),
                    candidates=[r.source for r in found.fixes], what=how)
