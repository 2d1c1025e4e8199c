"""The exercise widget, built from ipywidgets' own controls (it works in any frontend with ipywidgets).

    from jupyter_codegemma.exercises import ExerciseWidget, builtin_exercises
    ExerciseWidget(builtin_exercises())

The code editor is the labextension's CodeMirror view (`editor.CodeEditor`: highlighting, the error
line marked in the editor) where the labextension is installed, else a Textarea with a view under it
that shows the code with line numbers, the error line marked and a caret. `editor="codemirror"` or
`"textarea"` (or `%config CodeGemma.exercise_editor`) forces one. Everything else only reads and writes
the editor's `value`, so an `editor_factory` may supply any widget that has one.
"""

from __future__ import annotations

import html
import threading
from typing import Callable, Sequence

import ipywidgets as widgets

from .checker import CheckResult, check_code
from .editor import CodeEditor, labextension_installed
from .hints import NO_CONFIDENT, ModelFix, hint, model_fix, where_html
from .model import Exercise
from .results import Results
from .sandbox import Limits, run_tests

__all__ = ["EDITORS", "ExerciseWidget", "service_fix_provider"]

# (exercise, source, check result) -> ModelFix; None where no model is available
FixProvider = Callable[[Exercise, str, CheckResult], ModelFix]

_STYLE = ("<style>.codegemma-exercise-editor textarea{font-family:monospace;font-size:13px;"
          "white-space:pre;tab-size:4}</style>")


def _textarea(value: str) -> widgets.Textarea:
    editor = widgets.Textarea(value=value, description="Your code", placeholder="Fix the code here",
                              continuous_update=False, rows=max(value.count("\n") + 2, 6),
                              layout=widgets.Layout(width="100%"), style={"description_width": "initial"})
    editor.add_class("codegemma-exercise-editor")
    return editor


def _code_editor(value: str) -> CodeEditor:
    return CodeEditor(value=value, language="python", description="Your code: fix the syntax error",
                      layout=widgets.Layout(width="100%"))


# auto: the CodeMirror view where the labextension is installed, the Textarea elsewhere
EDITORS = ("auto", "codemirror", "textarea")


def editor_factory_for(editor: str = "auto") -> Callable[[str], widgets.Widget]:
    """The factory of the editor named `editor` (one of EDITORS)."""
    if editor not in EDITORS:
        raise ValueError(f"editor must be one of {', '.join(EDITORS)}, not {editor!r}")
    if editor == "auto":
        editor = "codemirror" if labextension_installed() else "textarea"
    return _code_editor if editor == "codemirror" else _textarea


class ExerciseWidget(widgets.VBox):
    """One exercise at a time from a set, with Check / Hint / Reset / Next, attempts and progress.

    `editor`: "codemirror", "textarea" or "auto" (default: the settings' `exercise_editor`, else auto);
    an `editor_factory(value) -> widget with a value` overrides it.
    """

    def __init__(self, exercises: Exercise | Sequence[Exercise], *, results: Results | None = None,
                 settings=None, fix_provider: FixProvider | None = None, limits: Limits | None = None,
                 editor: str | None = None, editor_factory: Callable[[str], widgets.Widget] | None = None,
                 **kwargs):
        self.exercises = [exercises] if isinstance(exercises, Exercise) else list(exercises)
        if not self.exercises:
            raise ValueError("ExerciseWidget needs at least one exercise")
        self.results = results if results is not None else Results()
        self.settings = settings  # the CodeGemma configurable: hints_enabled is exam mode's switch
        self.fix_provider = fix_provider
        self.limits = limits or Limits()
        self.index = 0
        self.hint_level = 0
        self._model_thread: threading.Thread | None = None

        self.title = widgets.HTML()
        self.instructions = widgets.HTML()
        if editor_factory is None:
            editor_factory = editor_factory_for(editor or getattr(settings, "exercise_editor", "auto"))
        self.editor = editor_factory("")
        # The CodeMirror view marks the error in the editor itself; the Textarea needs this view beside it.
        self.code_view = widgets.HTML(description="", layout=widgets.Layout(width="100%"))
        self.check_button = self._button("Check", "check", "Check the syntax and run the exercise's tests",
                                         "success")
        self.hint_button = self._button("Hint", "lightbulb-o", "Show the next hint: where, what kind, a fix", "info")
        self.reset_button = self._button("Reset", "undo", "Put back the original broken code", "")
        self.next_button = self._button("Next", "arrow-right", "Go to the next exercise in the set", "")
        self.status = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.hint_view = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.attempts = widgets.Label()
        self.progress = widgets.IntProgress(min=0, max=len(self.exercises), description="Solved",
                                            style={"description_width": "initial"})
        self.progress_label = widgets.Label()
        self.check_button.on_click(lambda _: self.check())
        self.hint_button.on_click(lambda _: self.next_hint())
        self.reset_button.on_click(lambda _: self.reset())
        self.next_button.on_click(lambda _: self.next())
        self.editor.observe(self._on_edit, names="value")
        buttons = widgets.HBox([self.check_button, self.hint_button, self.reset_button, self.next_button,
                                self.attempts])
        footer = widgets.HBox([self.progress, self.progress_label])
        code = [self.editor] if self._marks_in_editor else [self.editor, self.code_view]
        super().__init__([widgets.HTML(_STYLE), self.title, self.instructions, *code,
                          buttons, self.status, self.hint_view, footer], **kwargs)
        self.add_class("codegemma-exercise")
        self.load(0)

    @staticmethod
    def _button(text: str, icon: str, tooltip: str, style: str) -> widgets.Button:
        # `description` is the visible label and `tooltip` the title the browser exposes to screen readers
        return widgets.Button(description=text, tooltip=tooltip, icon=icon, button_style=style)

    # --- state -----------------------------------------------------------------------------------------

    @property
    def exercise(self) -> Exercise:
        return self.exercises[self.index]

    def load(self, index: int) -> None:
        self.index = index % len(self.exercises)
        ex = self.exercise
        stars = "★" * ex.difficulty + "☆" * (3 - ex.difficulty)
        self.title.value = (f"<h3 style='margin:4px 0'>{html.escape(ex.title)} "
                            f"<span aria-label='difficulty {ex.difficulty} of 3' title='difficulty'>{stars}</span> "
                            f"<small>({self.index + 1} of {len(self.exercises)})</small></h3>")
        self.instructions.value = f"<p>{html.escape(ex.instructions)}</p>"
        self.hint_level = 0
        self.hint_view.value = ""
        self.status.value = ""
        self.editor.value = ex.broken
        self._show_code()
        self.results.opened(ex.id)
        self._show_counts()

    @property
    def _marks_in_editor(self) -> bool:
        return isinstance(self.editor, CodeEditor)

    def _on_edit(self, change) -> None:
        # The Textarea's view re-checks the code on every edit. The CodeMirror mark follows the
        # student's edits by itself (the view sends its new place), so there nothing is re-checked
        # until the next Check.
        if not self._marks_in_editor:
            self._show_code()

    def _show_code(self, result: CheckResult | None = None) -> None:
        """Mark the error of a Check's `result`; with None (a new exercise, Reset), the fresh code."""
        if self._marks_in_editor:
            bad = result is not None and not result.ok
            self.editor.mark(result.line if bad else None, result.col if bad else None)
            return
        source = self.editor.value
        self.code_view.value = where_html(source, result if result is not None else check_code(source))

    def _show_counts(self) -> None:
        rec = self.results.record(self.exercise.id)
        solved_here = " — solved ✓" if rec.solved else ""
        self.attempts.value = f"Attempts: {rec.attempts}{solved_here}"
        solved = sum(self.results.record(e.id).solved for e in self.exercises if e.id in self.results.records)
        self.progress.value = solved
        self.progress_label.value = f"{solved} of {len(self.exercises)} solved"

    @property
    def solved(self) -> bool:
        return self.results.record(self.exercise.id).solved

    # --- the buttons ---------------------------------------------------------------------------------------

    def check(self) -> CheckResult:
        source = self.editor.value
        result = check_code(source)
        self._show_code(result)
        if not result.ok:
            self.results.attempt(self.exercise.id, solved=False)
            self.status.value = (f"<div role='alert' style='color:#b00'>✗ Syntax error on line {result.line}, "
                                 f"column {result.col}: {html.escape(result.message or '')}</div>")
        else:
            outcome = run_tests(source, self.exercise.tests, self.limits)
            self.results.attempt(self.exercise.id, solved=outcome.passed)
            if outcome.passed:
                self.status.value = "<div role='status' style='color:#080'>✓ Solved: the code parses and the tests pass.</div>"
            else:
                self.status.value = (f"<div role='alert' style='color:#b00'>The code parses, but: "
                                     f"{html.escape(outcome.message)}</div>")
        self._show_counts()
        return result

    def next_hint(self) -> str:
        source = self.editor.value
        result = check_code(source)
        top = 3 if self._model_allowed() else 2
        self.hint_level = min(self.hint_level + 1, top)
        level = self.hint_level
        if result.ok:
            text = hint(level, source, result)
            self.results.hint(self.exercise.id, level)
            self.hint_view.value = f"<div role='status'>{html.escape(text)}</div>"
            return text
        if level < 3:
            text = hint(level, source, result)
            if level == 2 and self.exercise.hints:
                text += "\n\n" + "\n".join(f"• {h}" for h in self.exercise.hints)
            if level == 2 and not self._model_allowed():
                text += "\n\n" + self._why_no_model()
            self.results.hint(self.exercise.id, level)
            self.hint_view.value = (f"<div role='status'><b>Hint {level}</b>"
                                    f"<pre style='white-space:pre-wrap;margin:2px 0'>{html.escape(text)}</pre></div>")
            return text
        self._ask_model(source, result)
        return "asking the model"

    def _model_allowed(self) -> bool:
        enabled = True if self.settings is None else bool(self.settings.hints_enabled)
        return enabled and self.fix_provider is not None

    def _why_no_model(self) -> str:
        if self.settings is not None and not self.settings.hints_enabled:
            return "(Model hints are switched off.)"
        return "(No model hints here: run %load_ext jupyter_codegemma for level 3.)"

    def _ask_model(self, source: str, result: CheckResult) -> None:
        if self._model_thread is not None and self._model_thread.is_alive():
            return
        self.hint_view.value = "<div role='status'><b>Hint 3</b> — asking the model for a fix...</div>"
        exercise = self.exercise

        def work():
            try:
                fix = self.fix_provider(exercise, source, result)
            except Exception as e:  # the model failed to load, or the kernel is shutting down
                fix = ModelFix(None, "", f"the model failed: {e}")
            self.results.hint(exercise.id, 3, model_fix_shown=fix.shown)
            if exercise is not self.exercise:
                return
            body = fix.message() if fix.shown else f"{NO_CONFIDENT}\n({fix.reason})"
            self.hint_view.value = (f"<div role='status'><b>Hint 3</b>"
                                    f"<pre style='white-space:pre-wrap;margin:2px 0'>{html.escape(body)}</pre></div>")

        self._model_thread = threading.Thread(target=work, name="codegemma-exercise-hint", daemon=True)
        self._model_thread.start()

    def wait_for_hint(self, timeout: float = 300) -> None:
        """Wait for a level-3 hint in progress (for scripts and tests)."""
        if self._model_thread is not None:
            self._model_thread.join(timeout)

    def reset(self) -> None:
        self.editor.value = self.exercise.broken
        self.hint_level = 0
        self.hint_view.value = ""
        self.status.value = ""
        self._show_code()

    def next(self) -> None:
        self.load(self.index + 1)


def service_fix_provider(service, *, n: int = 5, timeout: float = 300) -> FixProvider:
    """Level-3 fixes computed on the kernel's engine worker (one model, one queue for everything)."""
    from ..kernel.worker import Job
    from .hints import engine_sampler

    def provide(exercise: Exercise, source: str, result: CheckResult) -> ModelFix:
        box: dict = {}
        done = threading.Event()

        def verify(code: str) -> bool:
            return run_tests(code, exercise.tests).passed

        def run(engine):
            box["fix"] = model_fix(engine_sampler(engine, job.cancel), source, result, n=n, verify=verify)
            done.set()

        def failed(code, message):
            box["fix"] = ModelFix(None, "", f"the model failed: {message}")
            done.set()

        job = Job(run, on_error=failed, on_cancelled=lambda: (box.setdefault("fix", ModelFix(None, "", "cancelled")),
                                                              done.set()))
        service.submit(job)
        if not done.wait(timeout):
            job.cancel.set()
            job.drop_if_queued()
            return ModelFix(None, "", f"the model took longer than {timeout:g} s")
        return box["fix"]

    return provide
