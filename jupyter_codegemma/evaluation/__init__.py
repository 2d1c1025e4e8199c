"""`codegemma eval`: OpenAI's HumanEval infilling benchmarks, scored by running their tests.

    data.py     the tasks shipped in data/ (single-line, multi-line, random-span-light)
    runner.py   a task -> a completion request -> the text to insert; scoring overlapped with generation
    scoring.py  prompt + completion + suffix and the tests in a sandboxed child process; exact match
    report.py   pass@1, exact match, latency (mean, p95), the table
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from .data import BENCHMARKS, Task, load_tasks, select_tasks
from .report import Summary, format_table, summarize
from .runner import EvalOptions, TaskResult, run
from .scoring import Verdict, score

__all__ = ["BENCHMARKS", "EvalOptions", "Summary", "Task", "TaskResult", "Verdict", "evaluate", "format_table",
           "load_tasks", "run", "score", "select_tasks", "summarize"]


def evaluate(engine, benchmark: str, tasks: Iterable[Task], options: EvalOptions = EvalOptions(),
             on_result: Callable[[TaskResult], None] | None = None) -> tuple[Summary, list[TaskResult]]:
    """Run one benchmark's tasks; the summary and every task's result."""
    started = time.perf_counter()
    results = list(run(engine, tasks, options, on_result))
    return summarize(benchmark, results, model=engine.config.name, seconds=time.perf_counter() - started), results
