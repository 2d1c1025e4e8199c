"""Grading on the teacher's side: re-run each student's code against the exercise's tests, trust nothing else.

A results file is written by the student's own kernel, so its `solved` can be edited by hand. Like
nbgrader, which re-executes submitted notebooks, `codegemma grade` takes the code each Check recorded
(`code`, and `solved_code` for the Check that solved it), checks its syntax and runs the teacher's tests
on it in the sandbox (sandbox.py: a child process with CPU, wall-clock and memory limits, killed with
its process group), and reports a solve the re-run does not confirm as `unconfirmed`.

Where the results are. The widget's state is not saved in a notebook, so a notebook does not carry the
student's code; the results file `codegemma_exercise_results.json` beside it does. A submitted notebook
is therefore graded from the results file in its folder. nbgrader's `exchange`/`collect` copies the whole
assignment folder, so `submitted/STUDENT/ASSIGNMENT/` holds both, and the student is named by that path.
"""

from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .checker import check_code
from .model import Exercise
from .results import DEFAULT_FILE, ResultsError, read_results
from .sandbox import Limits, run_tests

__all__ = ["COLUMNS", "GradeRow", "Submission", "exercises_from_notebook", "find_submissions", "grade", "recheck"]

# The CSV's columns, one row per student x exercise of the set.
COLUMNS = ("student", "file", "exercise", "solved", "claimed_solved", "claim", "recheck", "message", "attempts",
           "hints", "max_hint_level", "model_fix_shown", "seconds", "policy", "policy_removed")


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path  # the results file
    data: dict  # what read_results gave
    via: str = ""  # the notebook(s) it was found for, if any


@dataclass(frozen=True)
class Recheck:
    status: str  # a sandbox status (passed, failed, error, timeout, memory, crashed), "syntax error" or "no code"
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class GradeRow:
    student: str
    file: str
    exercise: str
    solved: bool  # as re-checked here
    claimed_solved: bool  # as the student's results file says
    claim: str  # "confirmed", "unconfirmed" (claimed, not confirmed by the re-run) or "" (not claimed)
    recheck: str
    message: str
    attempts: int
    hints: int
    max_hint_level: int
    model_fix_shown: bool
    seconds: float
    policy: str  # the notebook policy in force, as compact JSON ("" where the results do not say)
    policy_removed: str  # "True" / "False" / ""

    def as_csv(self) -> list:
        return [getattr(self, name) for name in COLUMNS]


def _student_from_path(notebook: Path) -> str | None:
    """STUDENT from nbgrader's submitted/STUDENT/ASSIGNMENT/notebook.ipynb, else None."""
    parts = notebook.resolve().parts
    return parts[-3] if len(parts) >= 4 and parts[-4] == "submitted" else None


def _notebook_problem(notebook: Path) -> str | None:
    """Why a file named .ipynb is not a notebook (one line), or None."""
    try:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return f"{notebook}: not a readable notebook ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return f"{notebook}: not a notebook (no 'cells' list)"
    return None


def find_submissions(paths: Iterable[str | os.PathLike]) -> tuple[list[Submission], list[str]]:
    """The results files named by `paths` (results .json files, notebooks, or folders searched for both),
    each once, and one line per path that could not be used."""
    found: dict[Path, tuple[Path, list[str]]] = {}  # resolved results file -> (as named, the notebooks it is for)
    errors: list[str] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".json", ".ipynb")
                           and ".ipynb_checkpoints" not in p.parts and not p.name.endswith(".tmp"))
            if not files:
                errors.append(f"{path}: no results files or notebooks in this folder")
        elif path.exists():
            files = [path]
        else:
            errors.append(f"{path}: no such file or folder")
            continue
        for file in files:
            if file.suffix == ".ipynb":
                problem = _notebook_problem(file)
                results = file.parent / DEFAULT_FILE
                if problem:
                    errors.append(problem)
                elif not results.is_file():
                    errors.append(f"{file}: no {DEFAULT_FILE} beside it (the student's code and results are "
                                  "in that file; collect it with the notebook)")
                else:
                    found.setdefault(results.resolve(), (results, []))[1].append(str(file))
            else:
                found.setdefault(file.resolve(), (file, []))
    submissions = []
    for results, notebooks in found.values():
        try:
            data = read_results(results)
        except ResultsError as e:
            errors.append(str(e))
            continue
        from_layout = next((s for s in map(_student_from_path, map(Path, notebooks)) if s), None)
        student = from_layout or data.get("student") or results.stem
        submissions.append(Submission(student, results, data, ", ".join(notebooks)))
    return submissions, errors


def exercises_from_notebook(path: str | os.PathLike) -> list[Exercise]:
    """The `%%exercise` cells of the teacher's own notebook, for grading: each one's `--id` and its tests (the
    cell's `# tests` section). Never the student's copy, whose tests the student could have changed."""
    from .magics import _Mistake, split_args
    from .model import ExerciseError, _sections

    path = Path(path)
    problem = _notebook_problem(path)
    if problem:
        raise ExerciseError(problem)
    exercises: dict[str, Exercise] = {}
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for number, cell in enumerate(cells, 1):
        source = "".join(cell.get("source", "")) if cell.get("cell_type") == "code" else ""
        first, _, body = source.partition("\n")
        if not first.startswith("%%exercise"):
            continue
        try:
            words = split_args(first[len("%%exercise"):].replace("--id=", "--id "))
        except _Mistake as e:
            raise ExerciseError(f"{path}, cell {number}: {e}") from None
        ex_id = words[words.index("--id") + 1] if "--id" in words[:-1] else "cell"  # the magic's default
        if ex_id in exercises:
            raise ExerciseError(f"{path}, cell {number}: a second %%exercise with the id {ex_id!r}")
        parts = _sections(body)
        exercises[ex_id] = Exercise(id=ex_id, broken=parts.get("broken", ""), tests=parts.get("tests", ""),
                                    solution=parts.get("solution", parts.get("", "")))
    if not exercises:
        raise ExerciseError(f"{path}: no %%exercise cells in this notebook")
    return list(exercises.values())


def recheck(exercise: Exercise, code: str, limits: Limits, cwd: str | None = None) -> Recheck:
    """The student's code against the exercise's tests: syntax first (nothing runs), then the sandbox (in
    `cwd`)."""
    if not code.strip():
        return Recheck("no code", "no Check of this exercise recorded any code")
    result = check_code(code)
    if not result.ok:
        return Recheck("syntax error", f"line {result.line}: {result.message}")
    outcome = run_tests(code, exercise.tests, limits, cwd=cwd)
    return Recheck(outcome.status, "" if outcome.passed else " ".join(outcome.message.split())[:300])


def _field(data: dict, record: dict, name: str):
    """A policy field: the exercise's record may say, else the file (None where neither does)."""
    return record.get(name, data.get(name))


def _policy_text(value) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _number(record: dict, name: str, kind=int):
    value = record.get(name, 0)
    try:
        return kind(value)
    except (TypeError, ValueError):
        return kind(0)


def grade(submissions: Sequence[Submission], exercises: Sequence[Exercise], limits: Limits | None = None,
          jobs: int = 2, warn: Callable[[str], None] = lambda line: None) -> list[GradeRow]:
    """One row per submission x exercise, in order; the re-runs go `jobs` at a time (each its own process)."""
    limits = limits or Limits()
    by_id = {ex.id: ex for ex in exercises}
    work = []  # (submission, exercise, record, code to re-run)
    for sub in submissions:
        records = sub.data["exercises"]
        unknown = sorted(set(records) - set(by_id))
        if unknown:
            warn(f"{sub.path}: not in the exercise set, not graded: {', '.join(unknown)}")
        for ex in exercises:
            record = records.get(ex.id, {})
            claimed = record.get("solved") is True
            code = record.get("code") if isinstance(record.get("code"), str) else ""
            solved_code = record.get("solved_code") if isinstance(record.get("solved_code"), str) else ""
            # A solve stays a solve after later edits, as in the widget: the solving Check's code is re-run.
            work.append((sub, ex, record, claimed, solved_code if claimed and solved_code else code))
    # Each re-run's working directory is an empty scratch folder: a relative path in a student's code
    # cannot reach the teacher's files by accident. (Not a security boundary: the children run as the teacher.)
    with tempfile.TemporaryDirectory(prefix="codegemma-grade-") as scratch, \
            ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        checks = list(pool.map(lambda item: recheck(item[1], item[4], limits, cwd=scratch), work))
    rows = []
    for (sub, ex, record, claimed, _), check in zip(work, checks):
        claim = ("confirmed" if check.passed else "unconfirmed") if claimed else ""
        removed = _field(sub.data, record, "policy_removed")
        rows.append(GradeRow(
            student=sub.student, file=str(sub.path), exercise=ex.id, solved=check.passed, claimed_solved=claimed,
            claim=claim, recheck=check.status, message=check.message, attempts=_number(record, "attempts"),
            hints=_number(record, "hints"), max_hint_level=_number(record, "max_hint_level"),
            model_fix_shown=_number(record, "model_hints") > 0, seconds=_number(record, "seconds", float),
            policy=_policy_text(_field(sub.data, record, "policy")),
            policy_removed="" if removed is None else str(bool(removed))))
    return rows
