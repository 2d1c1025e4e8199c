"""Classroom syntax-fix exercises: the checker, the exercise model, a sandbox for the tests, the hint ladder,
an error generator, results, and the ipywidgets front end.

Importing this package is cheap; ipywidgets and the model load only where they are used.
"""

from .checker import CATEGORIES, CheckResult, check_code
from .model import Exercise, ExerciseError, builtin_exercises, exercise_from_cell, load_exercises, save_exercises

__all__ = ["CATEGORIES", "CheckResult", "CodeEditor", "Exercise", "ExerciseError", "ExerciseWidget",
           "builtin_exercises", "check_code", "exercise_from_cell", "load_exercises", "save_exercises"]


def __getattr__(name):  # the widgets import ipywidgets: only when asked for
    if name == "ExerciseWidget":
        from .widget import ExerciseWidget

        return ExerciseWidget
    if name == "CodeEditor":
        from .editor import CodeEditor

        return CodeEditor
    raise AttributeError(name)
