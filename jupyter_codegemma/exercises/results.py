"""What each student did per exercise — attempts, hints used, time, solved — in a JSON file beside the
notebook (widget state is not saved in notebooks), and a CSV export for the teacher.

    {"version": 1, "student": "ana", "exercises": {"colon-if": {"attempts": 2, "hints": 1,
     "max_hint_level": 1, "seconds": 41.5, "solved": true, "first_seen": "...", "solved_at": "...",
     "code": "the code of the last Check", "solved_code": "the code that solved it"}}}

What a student's kernel writes can be edited by the student: `codegemma grade` (grading.py) re-runs `code`
on the teacher's machine rather than trusting `solved`.
"""

from __future__ import annotations

import csv
import getpass
import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["DEFAULT_FILE", "ExerciseRecord", "Results", "ResultsError", "export_csv", "read_results"]

DEFAULT_FILE = "codegemma_exercise_results.json"
_PROVENANCE = ("policy", "policy_removed")  # written by the kernel's policy state; read by `codegemma grade`
_FIELDS = ("attempts", "hints", "max_hint_level", "model_hints", "seconds", "solved", "first_seen", "solved_at",
           "code", "solved_code")
_CSV_FIELDS = _FIELDS[:-2]  # the code is for `codegemma grade` to re-run, not for a spreadsheet


@dataclass
class ExerciseRecord:
    attempts: int = 0  # presses of Check
    hints: int = 0  # hints shown (a press of Hint that shows nothing new is not counted)
    max_hint_level: int = 0
    model_hints: int = 0  # level-3 hints shown with a fix
    seconds: float = 0.0  # time with the exercise open, until solved
    solved: bool = False
    first_seen: str = ""
    solved_at: str = ""
    # Provenance (kernel/policy.py): the notebook's AI policy at the last event, and whether a policy seen
    # earlier (in this kernel session, or in this record) was later removed or loosened.
    policy: dict | None = None
    policy_removed: bool = False
    code: str = ""  # the code of the last Check, re-run by `codegemma grade` on the teacher's machine
    solved_code: str = ""  # the code of the Check that solved it (what you solved stays solved)


class ResultsError(ValueError):
    """A results file that cannot be used; the message (one line) names the file and the problem."""


def read_results(path: str | os.PathLike) -> dict:
    """A results file's data: {"student": ..., "exercises": {id: {field: value}}}; ResultsError when the
    file is missing, unreadable, truncated or not a results file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise ResultsError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ResultsError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not text.strip():
        raise ResultsError(f"{path}: the file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        cut = " (the file ends before its brackets close: truncated?)" if _open_at_end(text) else ""
        raise ResultsError(f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}{cut}") from None
    exercises = data.get("exercises") if isinstance(data, dict) else None
    if not isinstance(exercises, dict):
        raise ResultsError(f"{path}: not a results file (expected an object with an 'exercises' object)")
    bad = [key for key, rec in exercises.items() if not isinstance(rec, dict)]
    if bad:
        raise ResultsError(f"{path}: the record of exercise {bad[0]!r} is not an object")
    if not isinstance(data.get("student", ""), (str, type(None))):
        raise ResultsError(f"{path}: 'student' is not text")
    return data


def _open_at_end(text: str) -> bool:
    """Whether JSON text ends inside a string or with a bracket still open (a file cut short)."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            escaped, in_string = (not escaped and ch == "\\"), in_string and (escaped or ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return in_string or depth > 0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Results:
    """Per-exercise records, written through to `path` (default: DEFAULT_FILE in the working directory,
    which is the notebook's folder in Jupyter)."""

    def __init__(self, path: str | os.PathLike | None = None, student: str | None = None, policy=None):
        self.path = Path(path) if path is not None else Path.cwd() / DEFAULT_FILE
        self.policy = policy  # the kernel's PolicyState (kernel/policy.py), stamped on each record; None: none
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        self.records: dict[str, ExerciseRecord] = {}
        self.student = student
        if not self.path.parent.is_dir():
            raise ResultsError(f"{self.path}: the folder {self.path.parent} does not exist")
        if self.path.exists():
            # A file that cannot be read is reported, never overwritten: it may hold a student's work.
            data = read_results(self.path)
            self.student = self.student or data.get("student")
            for key, rec in data["exercises"].items():
                self.records[key] = ExerciseRecord(**{k: v for k, v in rec.items() if k in _FIELDS + _PROVENANCE})
        if not self.student:
            try:
                self.student = getpass.getuser()
            except Exception:
                self.student = ""

    def record(self, exercise_id: str) -> ExerciseRecord:
        with self._lock:
            return self._record(exercise_id)

    def _record(self, exercise_id: str) -> ExerciseRecord:
        if exercise_id not in self.records:
            self.records[exercise_id] = ExerciseRecord(first_seen=_now())
        rec = self.records[exercise_id]
        if self.policy is not None:  # every event records the policy in force, and whether one was loosened
            from ..kernel.policy import loosens, parse_policy

            now = self.policy.provenance()
            try:
                before = parse_policy(rec.policy)
            except ValueError:  # a record edited by hand: its policy cannot be trusted either
                before = None
            rec.policy_removed = rec.policy_removed or now["policy_removed"] or loosens(
                before, parse_policy(now["policy"]))
            rec.policy = now["policy"]
        return rec

    def opened(self, exercise_id: str) -> None:
        with self._lock:
            self._record(exercise_id)
            self._started[exercise_id] = time.monotonic()
        self.save()

    def attempt(self, exercise_id: str, solved: bool, code: str | None = None) -> ExerciseRecord:
        """A press of Check; `code` is what was checked (the teacher's `codegemma grade` re-runs the last)."""
        with self._lock:
            rec = self._record(exercise_id)
            self._tick(exercise_id, rec)
            rec.attempts += 1
            if code is not None:
                rec.code = code
            if solved and not rec.solved:
                rec.solved, rec.solved_at = True, _now()
                rec.solved_code = code or ""
        self.save()
        return rec

    def hint(self, exercise_id: str, level: int, model_fix_shown: bool = False) -> ExerciseRecord:
        with self._lock:
            rec = self._record(exercise_id)
            self._tick(exercise_id, rec)
            rec.hints += 1
            rec.max_hint_level = max(rec.max_hint_level, level)
            rec.model_hints += int(model_fix_shown)
        self.save()
        return rec

    def model_fix_shown(self, exercise_id: str) -> ExerciseRecord:
        """A level-3 hint showed the model's fix (counted once per fix shown, not per press)."""
        with self._lock:
            rec = self._record(exercise_id)
            rec.model_hints += 1
        self.save()
        return rec

    def _tick(self, exercise_id: str, rec: ExerciseRecord) -> None:
        """Add the time since the last event (while unsolved) to the record."""
        now = time.monotonic()
        started = self._started.get(exercise_id, now)
        if not rec.solved:
            rec.seconds = round(rec.seconds + (now - started), 1)
        self._started[exercise_id] = now

    def save(self) -> Path:
        with self._lock:
            data = {"version": 1, "student": self.student,
                    "exercises": {k: asdict(v) for k, v in self.records.items()}}
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)  # never a half-written file
        return self.path

    def export_csv(self, path: str | os.PathLike) -> Path:
        return export_csv([self.path], path)


def export_csv(result_files, path: str | os.PathLike) -> Path:
    """One CSV row per (student, exercise) from one or more results files (e.g. collected from a class).

    A file that is missing, truncated or not a results file is skipped with one line on stderr naming
    it and the problem; the others are exported."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "file", "exercise", *_CSV_FIELDS])
        for file in result_files:
            file = Path(file)
            try:
                data = read_results(file)
            except ResultsError as e:
                print(f"export_csv: skipped {e}", file=sys.stderr)
                continue
            for key, rec in sorted(data["exercises"].items()):
                writer.writerow([data.get("student") or "", file.name, key, *(rec.get(k, "") for k in _CSV_FIELDS)])
    return path
