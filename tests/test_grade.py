"""`codegemma grade` (issue 18), run as a teacher runs it: a real process, real sandboxed re-runs, on an nbgrader
`submitted/` folder of synthetic students — honest, forged, runaway, memory bomb, empty — and a broken file."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time

import psutil
import pytest

from jupyter_codegemma.exercises import builtin_exercises, save_exercises

IDS = ("colon-if", "brackets-sum")
POLICY = {"hints_enabled": False, "completions_enabled": False}


def _submit(root, student: str, exercises: dict | None, raw: str | None = None, **top) -> None:
    """submitted/STUDENT/week1/: the notebook and, beside it, the results file the widget wrote."""
    folder = root / "submitted" / student / "week1"
    folder.mkdir(parents=True)
    notebook = {"cells": [{"cell_type": "code", "source": "%exercise --file week1.yaml", "metadata": {},
                           "outputs": [], "execution_count": None}], "metadata": {}, "nbformat": 4,
                "nbformat_minor": 5}
    (folder / "week1.ipynb").write_text(json.dumps(notebook))
    text = raw if raw is not None else json.dumps({"version": 1, "student": student, **top, "exercises": exercises})
    (folder / "codegemma_exercise_results.json").write_text(text)


def _record(code: str, solved: bool, **extra) -> dict:
    return {"attempts": 3, "hints": 2, "max_hint_level": 2, "model_hints": 0, "seconds": 12.5, "solved": solved,
            "code": code, "solved_code": code if solved else "", **extra}


def _watch(proc: subprocess.Popen) -> tuple[int, set[int]]:
    """The grading process's peak RSS (bytes) and every process it started, sampled until it exits."""
    me, peak, seen = psutil.Process(proc.pid), 0, set()
    while proc.poll() is None:
        try:
            peak = max(peak, me.memory_info().rss)
            seen.update(child.pid for child in me.children(recursive=True))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    return peak, seen


def test_grade_reruns_on_the_teachers_side_and_marks_forged_solves(tmp_path):
    exercises = {e.id: e for e in builtin_exercises() if e.id in IDS}
    colon, brackets = exercises["colon-if"], exercises["brackets-sum"]
    save_exercises([colon, brackets], tmp_path / "week1.yaml")
    _submit(tmp_path, "honest", {"colon-if": _record(colon.solution, True, model_hints=1, max_hint_level=3),
                                 "brackets-sum": _record(brackets.broken, False)},
            policy=POLICY, policy_removed=False)
    # Edited by hand: "solved" with code that still fails, and a solve with no code at all.
    _submit(tmp_path, "forger", {"colon-if": _record(colon.solution.replace('"hot"', '"cold"'), True),
                                 "brackets-sum": {"attempts": 1, "solved": True}})
    _submit(tmp_path, "looper", {"colon-if": _record("while True:\n    pass\n", True)})
    _submit(tmp_path, "bomber", {"colon-if": _record("x = []\nwhile True:\n    x.append(bytearray(10**8))\n", True)})
    _submit(tmp_path, "empty", {})
    _submit(tmp_path, "cut", None, raw='{"version": 1, "exercises": {"colon-if": {"attempts": 1')
    out = tmp_path / "grades.csv"

    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_codegemma.cli", "grade", str(tmp_path / "submitted"),
                             "--exercises", str(tmp_path / "week1.yaml"), "-o", str(out), "--timeout", "2",
                             "--memory", "256"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, started_pids = _watch(proc)
    stdout, stderr = proc.communicate(timeout=120)
    seconds = time.monotonic() - started

    # The broken file is one line, and the five others are graded; exit status 1 says a file was skipped.
    assert proc.returncode == 1, stderr
    skipped = [line for line in stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 1 and "cut" in skipped[0] and "truncated" in skipped[0], stderr
    rows = {(r["student"], r["exercise"]): r for r in csv.DictReader(out.open())}
    assert sorted({s for s, _ in rows}) == ["bomber", "empty", "forger", "honest", "looper"]
    assert len(rows) == 10  # student x exercise of the set

    def verdict(student, exercise):
        r = rows[(student, exercise)]
        return r["solved"], r["claimed_solved"], r["claim"], r["recheck"]

    assert verdict("honest", "colon-if") == ("True", "True", "confirmed", "passed")
    assert verdict("honest", "brackets-sum") == ("False", "False", "", "syntax error")
    honest = rows[("honest", "colon-if")]
    assert (honest["attempts"], honest["max_hint_level"], honest["model_fix_shown"]) == ("3", "3", "True")
    assert json.loads(honest["policy"]) == POLICY and honest["policy_removed"] == "False"
    assert rows[("forger", "colon-if")]["policy"] == "" and rows[("forger", "colon-if")]["policy_removed"] == ""
    assert verdict("forger", "colon-if") == ("False", "True", "unconfirmed", "failed")
    assert verdict("forger", "brackets-sum") == ("False", "True", "unconfirmed", "no code")
    assert verdict("looper", "colon-if") == ("False", "True", "unconfirmed", "timeout")
    assert verdict("bomber", "colon-if") == ("False", "True", "unconfirmed", "memory")
    assert verdict("empty", "colon-if") == ("False", "False", "", "no code")
    assert "4 claimed solves not confirmed" in stderr, stderr

    # The teacher's process was unharmed: the loop and the bomb ran in children that were stopped and are
    # gone, its own memory stayed small, and it finished in about the time the limits allow.
    assert started_pids, "no sandbox process was seen"
    assert not [pid for pid in started_pids if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert peak < 200 * 2**20, f"the grading process grew to {peak / 2**20:.0f} MB"
    assert seconds < 60


def test_the_teachers_notebook_as_the_exercise_set(tmp_path):
    """`--exercises lesson.ipynb`: the teacher's own %%exercise cells give the ids and the tests."""
    from jupyter_codegemma.exercises.grading import exercises_from_notebook, find_submissions, grade
    from jupyter_codegemma.exercises.model import ExerciseError
    from jupyter_codegemma.exercises.sandbox import Limits

    def notebook(*cells: str):
        path = tmp_path / "lesson.ipynb"
        path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": c, "metadata": {}, "outputs": []}
                                              for c in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
        return path

    lesson = notebook("print('intro')",
                      '%%exercise --id squares --category missing_comma --seed 3 --results {course / "r.json"}\n'
                      "squares = [1, 4, 9, 16]\ntotal = sum(squares)\n# tests\nassert total == 30\n",
                      '%%exercise --id=greet\n# broken\nprint("Hi)\n# solution\nprint("Hi")\n')
    squares, greet = exercises_from_notebook(lesson)
    assert (squares.id, squares.tests.strip(), greet.id, greet.tests) == ("squares", "assert total == 30", "greet", "")
    results = tmp_path / "ana.json"
    results.write_text(json.dumps({"student": "ana", "exercises": {
        "squares": _record("squares = [1, 4, 9, 16]\ntotal = sum(squares)\n", True),
        "greet": _record('print("Hi)\n', True)}}))
    rows = grade(find_submissions([results])[0], [squares, greet], Limits(cpu_s=2, wall_s=4, memory_mb=256))
    assert [(r.exercise, r.solved, r.claim, r.recheck) for r in rows] == [
        ("squares", True, "confirmed", "passed"), ("greet", False, "unconfirmed", "syntax error")]

    with pytest.raises(ExerciseError, match="a second %%exercise with the id 'greet'"):
        exercises_from_notebook(notebook("%%exercise --id greet\nx = 1\n", "%%exercise --id greet\nx = 2\n"))
    with pytest.raises(ExerciseError, match="no %%exercise cells"):
        exercises_from_notebook(notebook("x = 1\n"))


def test_each_unusable_input_is_one_line_and_the_rest_are_found(tmp_path):
    from jupyter_codegemma.exercises.grading import find_submissions

    _submit(tmp_path, "ana", {"colon-if": _record("x = 1\n", False)})
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "lesson.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    (tmp_path / "broken.ipynb").write_text("{not json")
    (tmp_path / "other.json").write_text('{"name": "not results"}')
    (tmp_path / "empty").mkdir()
    found, errors = find_submissions([tmp_path / "submitted", lone, tmp_path / "broken.ipynb",
                                      tmp_path / "other.json", tmp_path / "empty", tmp_path / "missing.json"])
    assert [(s.student, s.path.name) for s in found] == [("ana", "codegemma_exercise_results.json")]
    assert len(errors) == 5 and all("\n" not in e for e in errors), errors
    for name, problem in (("lesson.ipynb", "no codegemma_exercise_results.json beside it"),
                          ("broken.ipynb", "not a readable notebook"), ("other.json", "not a results file"),
                          ("empty", "no results files or notebooks"), ("missing.json", "no such file")):
        assert any(name in e and problem in e for e in errors), (name, errors)


def test_rerun_code_runs_in_a_scratch_folder(tmp_path, monkeypatch):
    """A relative path in a student's code lands in an empty scratch folder, not in the teacher's."""
    from jupyter_codegemma.exercises import Exercise
    from jupyter_codegemma.exercises.grading import find_submissions, grade

    monkeypatch.chdir(tmp_path)
    (tmp_path / "marks.csv").write_text("ana,10\n")
    code = "import os\nseen = sorted(os.listdir('.'))\nopen('marks.csv', 'w').write('ana,100\\n')\n"
    results = tmp_path / "ana.json"
    results.write_text(json.dumps({"student": "ana", "exercises": {"peek": _record(code, True)}}))
    exercise = Exercise(id="peek", broken="x", solution="x = 1\n", tests="assert seen == [], seen\n")
    [row] = grade(find_submissions([results])[0], [exercise])
    assert (row.solved, row.recheck) == (True, "passed"), row.message
    assert (tmp_path / "marks.csv").read_text() == "ana,10\n"
