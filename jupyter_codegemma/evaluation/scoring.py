"""Whether a completion is right: the task's tests, run in a sandboxed child process, and exact match.

The tests never run in this process: the program (prompt + completion + suffix) and
`check(entry_point)` go to `exercises.sandbox.run_tests`, a fresh `python -I -S` with CPU, memory
and wall-clock limits whose process group is killed on timeout. Model-written code can loop
forever or allocate without end; that must cost one task, not the evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..exercises.sandbox import Limits, run_tests
from .data import Task

# HumanEval's own harness allows 3 s per problem; our child also starts Python (~30 ms) and
# the machine may be shared, so the wall clock gets more room than the CPU.
DEFAULT_LIMITS = Limits(cpu_s=5, wall_s=15.0, memory_mb=1024, output_chars=2_000)


@dataclass(frozen=True)
class Verdict:
    status: str  # the sandbox's: passed, failed, error, timeout, memory, crashed
    message: str  # why it did not pass ("" when it did)
    exact: bool  # the completion equals the text that was cut out (see normalize)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def normalize(text: str) -> str:
    """Text for exact match: trailing spaces of each line and blank lines at either end removed.

    Indentation is kept (in Python it is meaning); a final newline is not (a line completion
    is shown without one).
    """
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def score(task: Task, middle: str, limits: Limits = DEFAULT_LIMITS) -> Verdict:
    """Run the task's tests on `prompt + middle + suffix` in the sandbox."""
    result = run_tests(task.program(middle), task.test_code(), limits)
    message = "" if result.passed else result.message
    return Verdict(status=result.status, message=message,
                   exact=normalize(middle) == normalize(task.canonical_solution))
