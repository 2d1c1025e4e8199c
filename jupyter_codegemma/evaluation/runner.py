"""Complete each task with an engine, and score it while the next one is generated.

How a task becomes a completion request:

- **Models with FIM pieces** (CodeGemma) get the benchmark's own prefix and suffix in a PSM or
  SPM prompt, as in the CodeGemma and FIM papers, and the model ends the middle with a FIM or
  end token.
- **Models without them** (the default Gemma 3 270M) see the prefix only ("prefix-only"); the
  suffix only tells the engine where to stop and what to trim (see backends/fim.py).

Single- and multi-line gaps are whole lines: the prefix ends with a newline and the suffix starts
with the next line. The engine is asked for one line (single-line) or one block (multi-line) and
a newline is added when the completion lacks one. For prefix-only prompts the suffix the engine
sees starts with that newline, as in an editor whose cursor is on a new empty line: the suffix's
first line is then the line after the cursor, not text to its right. Random spans start and end
anywhere, so the engine's `auto` mode cuts them.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from ..exercises.sandbox import Limits
from .data import Task
from .scoring import DEFAULT_LIMITS, score

PROMPT_MODES = ("auto", "psm", "spm")

# How the engine cuts a completion, per benchmark (backends/fim.py: shape).
CUT = {"single-line": "line", "multi-line": "block", "random-span-light": "auto"}


@dataclass(frozen=True)
class EvalOptions:
    mode: str = "auto"  # prompt mode: auto (psm with FIM, else prefix-only), psm, spm
    max_new_tokens: int | None = None  # None: the engine's default for the cut (48 a line, 160 a block)
    limits: Limits = DEFAULT_LIMITS
    rank_by_suffix: bool = False  # Engine.complete's: a model without FIM ranks suggestions by the code after the gap


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    benchmark: str
    completion: str  # what was inserted between prompt and suffix
    status: str  # passed, failed, error, timeout, memory, crashed
    exact: bool
    latency_ms: float  # request to finished completion (what a user waits for)
    ttft_ms: float
    prompt_tokens: int
    reused_tokens: int  # prompt tokens whose KV cache the previous task left
    new_tokens: int
    prompt_mode: str  # psm, spm or prefix-only
    message: str = ""  # why the tests did not pass

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def resolve_layout(engine, mode: str) -> str:
    """The FIM layout to ask the engine for; "psm"/"spm" need a model with FIM pieces."""
    if mode not in PROMPT_MODES:
        raise ValueError(f"prompt mode must be one of {', '.join(PROMPT_MODES)}, got {mode!r}")
    if mode != "auto" and not engine.has_fim:
        raise ValueError(f"--mode {mode} needs FIM tokens, and {engine.config.name} has no FIM tokens: only "
                         "prefix-only prompts work with it (--mode auto)")
    return "psm" if mode == "auto" else mode


def complete_task(engine, task: Task, options: EvalOptions = EvalOptions()):
    """(the text to insert, the engine's CompletionResult) for one task."""
    layout = resolve_layout(engine, options.mode)
    suffix = task.suffix
    if task.whole_lines and not engine.has_fim:
        suffix = "\n" + suffix
    # As the kernel completes (checked, alternatives when the first fails: backends/candidates.py); the
    # program runs alone, so the names it can read are those its text binds and the builtins.
    result = engine.complete(task.prompt, suffix, mode=CUT[task.benchmark], layout=layout,
                             max_new_tokens=options.max_new_tokens, namespace=(),
                             rank_by_suffix=options.rank_by_suffix).wait()
    middle = result.text
    if task.whole_lines and middle and not middle.endswith("\n"):
        middle += "\n"
    return middle, result


def run(engine, tasks: Iterable[Task], options: EvalOptions = EvalOptions(),
        on_result: Callable[[TaskResult], None] | None = None) -> Iterator[TaskResult]:
    """Yield a TaskResult per task, in order. The tests of one task run in a child process
    while the engine completes the next (the child mostly waits on Python's start-up)."""
    resolve_layout(engine, options.mode)  # a bad mode fails before the first task
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="codegemma-eval") as pool:
        pending = None
        for task in tasks:
            middle, completion = complete_task(engine, task, options)
            job = pool.submit(score, task, middle, options.limits)
            if pending is not None:
                yield _finish(*pending, on_result)
            pending = (task, middle, completion, job)
        if pending is not None:
            yield _finish(*pending, on_result)


def _finish(task: Task, middle: str, completion, job, on_result) -> TaskResult:
    verdict = job.result()
    stats = completion.stats
    result = TaskResult(task_id=task.task_id, benchmark=task.benchmark, completion=middle, status=verdict.status,
                        exact=verdict.exact, latency_ms=round(completion.total_ms, 2),
                        ttft_ms=round(completion.ttft_ms, 2), prompt_tokens=stats.prompt_tokens,
                        reused_tokens=stats.reused_tokens, new_tokens=stats.new_tokens,
                        prompt_mode=completion.layout, message=verdict.message)
    if on_result is not None:
        on_result(result)
    return result
