"""What each student did per exercise — attempts, hints used, time, solved — in a JSON file beside the
notebook (widget state is not saved in notebooks), and a CSV export for the teacher.

    {"version": 1, "student": "ana", "exercises": {"colon-if": {"attempts": 2, "hints": 1,
     "max_hint_level": 1, "seconds": 41.5, "solved": true, "first_seen": "...", "solved_at": "..."}}}
"""

from __future__ import annotations

import csv
import getpass
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["DEFAULT_FILE", "ExerciseRecord", "Results", "export_csv"]

DEFAULT_FILE = "codegemma_exercise_results.json"
_FIELDS = ("attempts", "hints", "max_hint_level", "model_hints", "seconds", "solved", "first_seen", "solved_at")


@dataclass
class ExerciseRecord:
    attempts: int = 0  # presses of Check
    hints: int = 0  # presses of Hint
    max_hint_level: int = 0
    model_hints: int = 0  # level-3 hints shown with a fix
    seconds: float = 0.0  # time with the exercise open, until solved
    solved: bool = False
    first_seen: str = ""
    solved_at: str = ""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Results:
    """Per-exercise records, written through to `path` (default: DEFAULT_FILE in the working directory,
    which is the notebook's folder in Jupyter)."""

    def __init__(self, path: str | os.PathLike | None = None, student: str | None = None):
        self.path = Path(path) if path is not None else Path.cwd() / DEFAULT_FILE
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        self.records: dict[str, ExerciseRecord] = {}
        self.student = student
        if self.path.exists():
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.student = self.student or data.get("student")
            for key, rec in data.get("exercises", {}).items():
                self.records[key] = ExerciseRecord(**{k: v for k, v in rec.items() if k in _FIELDS})
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
        return self.records[exercise_id]

    def opened(self, exercise_id: str) -> None:
        with self._lock:
            self._record(exercise_id)
            self._started[exercise_id] = time.monotonic()
        self.save()

    def attempt(self, exercise_id: str, solved: bool) -> ExerciseRecord:
        with self._lock:
            rec = self._record(exercise_id)
            self._tick(exercise_id, rec)
            rec.attempts += 1
            if solved and not rec.solved:
                rec.solved, rec.solved_at = True, _now()
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
    """One CSV row per (student, exercise) from one or more results files (e.g. collected from a class)."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "file", "exercise", *_FIELDS])
        for file in result_files:
            file = Path(file)
            data = json.loads(file.read_text(encoding="utf-8"))
            for key, rec in sorted(data.get("exercises", {}).items()):
                writer.writerow([data.get("student", ""), file.name, key, *(rec.get(k, "") for k in _FIELDS)])
    return path
