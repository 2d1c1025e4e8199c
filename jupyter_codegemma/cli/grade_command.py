"""`codegemma grade`: re-run each student's code against the tests on the teacher's machine, write a CSV.

    codegemma grade submitted/                         nbgrader's submitted/STUDENT/ASSIGNMENT/ folders
    codegemma grade ana.json bo.json --exercises week3.yaml -o week3.csv

No model is loaded. A file that cannot be used is one line on stderr, and the others are graded.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from typing import IO

from .common import CliError


def add_parser(commands) -> None:
    gr = commands.add_parser("grade", help="re-run students' exercise code against the tests: a CSV per student "
                             "x exercise, solves the re-run does not confirm marked 'unconfirmed'")
    gr.add_argument("paths", nargs="+", metavar="PATH",
                    help="results files (codegemma_exercise_results.json), submitted notebooks (graded from the "
                    "results file beside them) or folders holding them, e.g. nbgrader's submitted/")
    gr.add_argument("--exercises", metavar="FILE", help="the exercise set: YAML or JSON, or your own notebook's "
                    "%%%%exercise cells (.ipynb; their ids and tests); default: the built-in set")
    gr.add_argument("-o", "--output", default="grades.csv", metavar="FILE",
                    help="the CSV to write ('-' for stdout; default grades.csv)")
    gr.add_argument("--timeout", type=float, default=5.0, metavar="S",
                    help="CPU seconds per re-run (default 5, as in the widget); the wall-clock limit is twice that")
    gr.add_argument("--memory", type=int, default=512, metavar="MB", help="memory per re-run (default 512 MB)")
    gr.add_argument("--jobs", type=int, default=2, metavar="N", help="re-runs at a time (default 2)")


def cmd_grade(args, out: IO[str]) -> int:
    from ..exercises import model
    from ..exercises.grading import COLUMNS, exercises_from_notebook, find_submissions, grade
    from ..exercises.sandbox import Limits

    if not args.timeout > 0 or not math.isfinite(args.timeout):
        raise CliError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.memory < 64:
        raise CliError(f"--memory must be at least 64 (MB), got {args.memory}")
    if args.jobs < 1:
        raise CliError(f"--jobs must be at least 1, got {args.jobs}")
    try:
        if not args.exercises:
            exercises = model.builtin_exercises()
        elif args.exercises.endswith(".ipynb"):
            exercises = exercises_from_notebook(args.exercises)
        else:
            exercises = model.load_exercises(args.exercises)
    except model.ExerciseError as e:
        raise CliError(str(e)) from None
    submissions, errors = find_submissions(args.paths)
    for line in errors:
        print(f"codegemma grade: skipped {line}", file=sys.stderr)
    if not submissions:
        raise CliError("no results files to grade")
    limits = Limits(cpu_s=max(1, math.ceil(args.timeout)), wall_s=2 * args.timeout, memory_mb=args.memory)
    rows = grade(submissions, exercises, limits, jobs=args.jobs,
                 warn=lambda line: print(f"codegemma grade: {line}", file=sys.stderr))
    target = out if args.output == "-" else Path(args.output).open("w", newline="", encoding="utf-8")
    try:
        writer = csv.writer(target)
        writer.writerow(COLUMNS)
        writer.writerows(row.as_csv() for row in rows)
    finally:
        if target is not out:
            target.close()
    unconfirmed = [f"{r.student}: {r.exercise}" for r in rows if r.claim == "unconfirmed"]
    summary = (f"graded {len(submissions)} submission{'s' * (len(submissions) != 1)} x {len(exercises)} "
               f"exercise{'s' * (len(exercises) != 1)}: {sum(r.solved for r in rows)} solved as re-run, "
               f"{len(unconfirmed)} claimed solve{'s' * (len(unconfirmed) != 1)} not confirmed"
               + (f" ({'; '.join(unconfirmed[:10])}{' ...' if len(unconfirmed) > 10 else ''})" if unconfirmed else ""))
    print(f"codegemma grade: {summary}" + ("" if args.output == "-" else f"; wrote {args.output}"), file=sys.stderr)
    return 1 if errors else 0
