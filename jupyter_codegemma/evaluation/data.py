"""The HumanEval infilling tasks shipped in `data/` (OpenAI, MIT licence: see data/LICENSE)."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"

# Benchmark name -> (file, how a completion is cut: see runner.py).
BENCHMARKS = {
    "single-line": "HumanEval-SingleLineInfilling.jsonl.gz",
    "multi-line": "HumanEval-MultiLineInfilling.jsonl.gz",
    "random-span-light": "HumanEval-RandomSpanInfillingLight.jsonl.gz",
}
# How each file's task ids begin.
TASK_ID_PREFIX = {"single-line": "SingleLineInfilling/", "multi-line": "MultiLineInfilling/",
                  "random-span-light": "RandomSpanInfillingLight/"}


@dataclass(frozen=True)
class Task:
    task_id: str  # e.g. "SingleLineInfilling/HumanEval/0/L0"
    benchmark: str  # a key of BENCHMARKS
    prompt: str  # the code before the gap
    suffix: str  # the code after it
    canonical_solution: str  # what was cut out
    test: str  # defines check(candidate)
    entry_point: str  # the function check() is given

    @property
    def whole_lines(self) -> bool:
        """Single- and multi-line gaps are whole lines (each ending in a newline); random spans are not."""
        return self.benchmark != "random-span-light"

    def program(self, middle: str) -> str:
        """The file the tests run against: prompt + middle + suffix."""
        return self.prompt + middle + self.suffix

    def test_code(self) -> str:
        # The sandbox calls a `check` it finds after the tests as check(namespace) (its own
        # convention for exercises); HumanEval's check(candidate) has run by then, so it goes.
        return f"{self.test}\n\ncheck({self.entry_point})\ndel check\n"


def load_tasks(benchmark: str = "single-line", *, limit: int | None = None, stride: int = 1,
               task_ids: tuple[str, ...] = ()) -> list[Task]:
    """The tasks of one benchmark, in the file's order (grouped by HumanEval problem).

    `stride` keeps every stride-th task (a sample spread over all problems, where `limit`
    alone would keep the first few problems); `task_ids` keeps only those (all must exist).
    """
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    with gzip.open(DATA_DIR / BENCHMARKS[benchmark], "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    tasks = [Task(task_id=r["task_id"], benchmark=benchmark, prompt=r["prompt"], suffix=r["suffix"],
                  canonical_solution=r["canonical_solution"], test=r["test"], entry_point=r["entry_point"])
             for r in records]
    if task_ids:
        known = {t.task_id for t in tasks}
        missing = [i for i in task_ids if i not in known]
        if missing:
            raise ValueError(f"no task {missing[0]!r} in {benchmark} (ids look like {tasks[0].task_id!r})")
        tasks = [t for t in tasks if t.task_id in set(task_ids)]
    tasks = tasks[::stride]
    return tasks[:limit] if limit is not None else tasks


def benchmark_of(task_id: str) -> str:
    for name, prefix in TASK_ID_PREFIX.items():
        if task_id.startswith(prefix):
            return name
    raise ValueError(f"{task_id!r} is not a HumanEval infilling task id (they begin with "
                     f"{', '.join(TASK_ID_PREFIX.values())})")


def select_tasks(benchmarks: tuple[str, ...] = (), task_ids: tuple[str, ...] = (), *, limit: int | None = None,
                 stride: int = 1) -> dict[str, list[Task]]:
    """Benchmark -> its chosen tasks. No benchmarks named: those of `task_ids`, else single-line."""
    by_benchmark: dict[str, list[str]] = {}
    for task_id in task_ids:
        by_benchmark.setdefault(benchmark_of(task_id), []).append(task_id)
    names = list(dict.fromkeys(benchmarks or by_benchmark or ["single-line"]))
    if task_ids:
        stray = [i for name, ids in by_benchmark.items() if name not in names for i in ids]
        if stray:
            raise ValueError(f"task {stray[0]!r} is not in the chosen benchmarks ({', '.join(names)})")
    return {name: load_tasks(name, limit=limit, stride=stride, task_ids=tuple(by_benchmark.get(name, ())))
            for name in names if not task_ids or name in by_benchmark}
