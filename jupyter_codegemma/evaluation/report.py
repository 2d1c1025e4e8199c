"""Figures over a benchmark's results, and the table `codegemma eval` prints."""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Sequence

from .runner import TaskResult

# Published pass@1 of CodeGemma on HumanEval infilling (CodeGemma report, 2024, table "single-line
# and multi-line code completion"), for the table's last column.
PAPER_PASS_AT_1 = {
    "single-line": {"CodeGemma 2B": 78.4, "CodeGemma 7B": 76.1},
    "multi-line": {"CodeGemma 2B": 51.4, "CodeGemma 7B": 58.4},
}


@dataclass(frozen=True)
class Summary:
    benchmark: str
    tasks: int
    passed: int
    exact: int
    mean_latency_ms: float
    p95_latency_ms: float
    prompt_mode: str  # psm, spm, prefix-only (or "mixed", which a single run never gives)
    model: str
    seconds: float  # wall clock of the whole run, model load excluded
    statuses: dict = field(default_factory=dict)  # status -> count

    @property
    def pass_at_1(self) -> float:
        return self.passed / self.tasks if self.tasks else 0.0

    @property
    def exact_match(self) -> float:
        return self.exact / self.tasks if self.tasks else 0.0

    def to_json(self) -> dict:
        return {"benchmark": self.benchmark, "tasks": self.tasks, "pass_at_1": round(self.pass_at_1, 4),
                "exact_match": round(self.exact_match, 4), "passed": self.passed, "exact": self.exact,
                "mean_latency_ms": round(self.mean_latency_ms, 1), "p95_latency_ms": round(self.p95_latency_ms, 1),
                "prompt_mode": self.prompt_mode, "model": self.model, "seconds": round(self.seconds, 1),
                "statuses": dict(self.statuses)}


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100): a value that occurred, no interpolation."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)), 1) - 1]


def summarize(benchmark: str, results: Sequence[TaskResult], *, model: str, seconds: float) -> Summary:
    """pass@1 is the share of tasks whose tests pass: with greedy decoding one sample per task is
    all there is, so it is the unbiased pass@1 estimator of the Codex paper with n = 1."""
    latencies = [r.latency_ms for r in results]
    modes = {r.prompt_mode for r in results}
    return Summary(benchmark=benchmark, tasks=len(results), passed=sum(r.passed for r in results),
                   exact=sum(r.exact for r in results),
                   mean_latency_ms=sum(latencies) / len(latencies) if latencies else 0.0,
                   p95_latency_ms=percentile(latencies, 95),
                   prompt_mode=modes.pop() if len(modes) == 1 else ("mixed" if modes else "-"),
                   model=model, seconds=seconds,
                   statuses=dict(collections.Counter(r.status for r in results)))


def format_table(summaries: Sequence[Summary]) -> str:
    header = ("benchmark", "tasks", "pass@1", "exact", "mean ms", "p95 ms", "prompt", "paper pass@1 (2B/7B)")
    rows = [header]
    for s in summaries:
        paper = PAPER_PASS_AT_1.get(s.benchmark)
        rows.append((s.benchmark, str(s.tasks), f"{100 * s.pass_at_1:.1f}%", f"{100 * s.exact_match:.1f}%",
                     f"{s.mean_latency_ms:.0f}", f"{s.p95_latency_ms:.0f}", s.prompt_mode,
                     " / ".join(f"{v}%" for v in paper.values()) if paper else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i in (0, 6, 7) else cell.rjust(w) for i, (cell, w) in
                       enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
