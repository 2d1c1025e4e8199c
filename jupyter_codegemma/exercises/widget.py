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

from ..kernel.policy import PolicyState
from .checker import CheckResult, check_code
from .editor import EDITOR_STYLE, EDITORS, CodeEditor, editor_factory_for
from .fix_provider import FixProvider, FixRequest, ask_for_fix, fix_text, service_fix_provider
from .hints import ModelFix, hint, where_html
from .model import Exercise
from .results import Results
from .sandbox import Limits, run_tests
from .summary import html_as_text, summary_html

__all__ = ["EDITORS", "ExerciseWidget", "service_fix_provider"]

_NOT_SHOWN = "Not shown: the code changed while the model was looking for a fix."


class ExerciseWidget(widgets.VBox):
    """One exercise at a time from a set, with Check / Hint / Reset / Next, attempts and progress; after the
    last exercise, Next shows a summary of the set with a Start over button.

    Hints form a ladder for the code in the editor: each press adds the next level under the ones shown
    (1. where, 2. what kind and why, 3. the model's fix). The ladder belongs to one version of the code:
    after an edit, the next press starts again at level 1 and says so; a new exercise starts with none.
    The model is asked at most once per exercise and code: a later press for the same code shows the
    answer it gave. An answer that arrives after the code changed, the exercise was solved or another
    exercise was opened is dropped (and the request cancelled where the provider accepts `cancel`).

    `editor`: "codemirror", "textarea" or "auto" (default: the settings' `exercise_editor`, else auto);
    an `editor_factory(value) -> widget with a value` overrides it. `fix_provider(exercise, source, result)`
    (optionally with a `cancel` event keyword) computes level 3 on a background thread.
    """

    def __init__(self, exercises: Exercise | Sequence[Exercise], *, results: Results | None = None,
                 settings=None, fix_provider: FixProvider | None = None, limits: Limits | None = None,
                 editor: str | None = None, editor_factory: Callable[[str], widgets.Widget] | None = None,
                 policy: PolicyState | None = None, **kwargs):
        self.exercises = [exercises] if isinstance(exercises, Exercise) else list(exercises)
        if not self.exercises:
            raise ValueError("ExerciseWidget needs at least one exercise")
        self.results = results if results is not None else Results()
        self.settings = settings  # the CodeGemma configurable: hints_enabled is exam mode's switch
        self.policy = policy or PolicyState()  # the notebook's AI policy in this kernel: it caps the ladder
        self.fix_provider = fix_provider
        self.limits = limits or Limits()
        self.index = 0
        self.hint_level = 0
        self.finished = False  # the set's summary is showing
        self._model_thread: threading.Thread | None = None  # the latest level-3 request's thread
        self._lock = threading.RLock()  # the version, the ladder and the request, shared with that thread
        self._version = 0  # the code version: a new one at each edit, load, Reset and solving Check
        self._solved_version = -1
        self._ladder: list[list] = []  # [level, text or None while the model is asked] for _ladder_version
        self._ladder_version = -1
        self._note = ""  # one line under the ladder
        self._head = ""  # one line above it: the ladder started again for new code
        self._request: FixRequest | None = None
        self._fixes: dict[tuple[str, str], ModelFix] = {}  # the model's answer per (exercise id, code)

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
        self.start_over_button = self._button("Start over", "repeat", "Go back to the first exercise of the set",
                                              "primary")
        self.status = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.hint_view = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.summary = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.attempts = widgets.Label()
        self.progress = widgets.IntProgress(min=0, max=len(self.exercises), description="Solved",
                                            style={"description_width": "initial"})
        self.progress_label = widgets.Label()
        self.check_button.on_click(lambda _: self.check())
        self.hint_button.on_click(lambda _: self.next_hint())
        self.reset_button.on_click(lambda _: self.reset())
        self.next_button.on_click(lambda _: self.next())
        self.start_over_button.on_click(lambda _: self.start_over())
        self.editor.observe(self._on_edit, names="value")
        buttons = widgets.HBox([self.check_button, self.hint_button, self.reset_button, self.next_button,
                                self.attempts])
        footer = widgets.HBox([self.progress, self.progress_label])
        code = [self.editor] if self._marks_in_editor else [self.editor, self.code_view]
        style = widgets.HTML(EDITOR_STYLE)
        self._exercise_view = [style, self.title, self.instructions, *code, buttons, self.status, self.hint_view,
                               footer]
        self._summary_view = [style, self.title, self.summary, widgets.HBox([self.start_over_button]), footer]
        super().__init__(self._exercise_view, **kwargs)
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
        with self._lock:
            self._new_version(clear_ladder=True)
            self.index = index % len(self.exercises)
        if self.finished:
            self.finished = False
            self.children = self._exercise_view
        ex = self.exercise
        stars = "★" * ex.difficulty + "☆" * (3 - ex.difficulty)
        self.title.value = (f"<h3 style='margin:4px 0'>{html.escape(ex.title)} "
                            f"<span aria-label='difficulty {ex.difficulty} of 3' title='difficulty'>{stars}</span> "
                            f"<small>({self.index + 1} of {len(self.exercises)})</small></h3>")
        self.instructions.value = f"<p>{html.escape(ex.instructions)}</p>"
        last = self.index == len(self.exercises) - 1
        self.next_button.tooltip = "Finish the set: a summary of it" if last else "Go to the next exercise in the set"
        self.status.value = ""
        self.editor.value = ex.broken
        self._show_code()
        self.results.opened(ex.id)
        self._show_counts()

    @property
    def _marks_in_editor(self) -> bool:
        return isinstance(self.editor, CodeEditor)

    def _on_edit(self, change) -> None:
        with self._lock:
            self._new_version(why="edit")
        # The Textarea's view re-checks the code on every edit. The CodeMirror mark follows the
        # student's edits by itself (the view sends its new place), so there nothing is re-checked
        # until the next Check.
        if not self._marks_in_editor:
            self._show_code()

    def _new_version(self, *, why: str = "", clear_ladder: bool = False) -> None:
        """The code, the exercise or its state changed: later model answers for the old version are dropped,
        and the request in flight is cancelled. `why`: "edit" says so in place of the pending hint, "solved"
        takes the pending hint away; `clear_ladder` empties the hints (a new exercise, Reset)."""
        self._version += 1
        request = self._request
        if request is not None and request.thread.is_alive():
            request.cancel.set()
        pending = [entry for entry in self._ladder if entry[1] is None]
        if clear_ladder:
            if not self._ladder and not self._note and not self._head:
                self._ladder_version, self.hint_level = self._version, 0
                return
            self._ladder, self._ladder_version, self.hint_level = [], self._version, 0
            self._note = self._head = ""
        elif why == "solved" and (pending or self._note):
            # solved: a model hint still on its way, or one dropped for older code, has nothing left to say
            self._ladder = [entry for entry in self._ladder if entry[1] not in (None, _NOT_SHOWN)]
            self._note = ""
        elif pending:
            for entry in pending:
                entry[1] = _NOT_SHOWN
            self._note = "Press Hint for hints on the code as it is now."
        else:
            return
        self._render_hints()

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
        solved = self._solved_count()
        self.progress.value = solved
        self.progress_label.value = f"{solved} of {len(self.exercises)} solved"

    def _solved_count(self) -> int:
        return sum(self.results.records[e.id].solved for e in self.exercises if e.id in self.results.records)

    @property
    def solved(self) -> bool:
        return self.results.record(self.exercise.id).solved

    # --- the hint ladder's view --------------------------------------------------------------------------

    def _render_hints(self) -> None:
        # Each hint's title and text are separated by a line break, so the text of the view reads
        # "Hint 3" / "No confident suggestion ..." (not "Hint 3No confident ...").
        parts = [f"<div class='codegemma-hint-note'><i>{html.escape(self._head)}</i></div>"] if self._head else []
        for level, text in self._ladder:
            body = "Asking the model for a fix..." if text is None else text
            parts.append(f"<div class='codegemma-hint'><b>Hint {level}</b>\n"
                         f"<pre style='white-space:pre-wrap;margin:2px 0 6px'>{html.escape(body)}</pre></div>")
        if self._note:
            parts.append(f"<div class='codegemma-hint-note'><i>{html.escape(self._note)}</i></div>")
        self.hint_view.value = ("<div class='codegemma-hints' aria-live='polite'>" + "\n".join(parts) + "</div>"
                                if parts else "")

    @property
    def hint_text(self) -> str:
        """The hints shown, as plain text: "Hint 1", its text, a blank line, "Hint 2", ..."""
        with self._lock:
            blocks = [f"Hint {level}\n{'Asking the model for a fix...' if text is None else text}"
                      for level, text in self._ladder]
            return "\n\n".join([self._head] * bool(self._head) + blocks + [self._note] * bool(self._note))

    # --- the buttons ---------------------------------------------------------------------------------------

    def check(self) -> CheckResult:
        source = self.editor.value
        result = check_code(source)
        self._show_code(result)
        if not result.ok:
            self.results.attempt(self.exercise.id, solved=False, code=source)
            # Python's own message, then what it means in plain words (explanations.PLAIN)
            self.status.value = (f"<div role='alert' style='color:#b00'>✗ Syntax error on line {result.line}, "
                                 f"column {result.col}: {html.escape(result.message or '')}"
                                 f"<div class='codegemma-plain' style='color:#444'>{html.escape(result.plain or '')}"
                                 "</div></div>")
        else:
            outcome = run_tests(source, self.exercise.tests, self.limits)
            self.results.attempt(self.exercise.id, solved=outcome.passed, code=source)
            if outcome.passed:
                with self._lock:
                    if source == self.editor.value:  # still the code that was checked
                        same_code = self._ladder_version == self._version
                        self._new_version(why="solved")
                        self._solved_version = self._version
                        if same_code:  # the ladder shown is this code's: it goes on
                            self._ladder_version = self._version
                self.status.value = "<div role='status' style='color:#080'>✓ Solved: the code parses and the tests pass.</div>"
            else:
                self.status.value = (f"<div role='alert' style='color:#b00'>The code parses, but: "
                                     f"{html.escape(outcome.message)}</div>")
        self._show_counts()
        return result

    def next_hint(self) -> str:
        """The Hint button: add the next level of the ladder for the code in the editor; its text."""
        if self.finished:
            return ""
        source = self.editor.value
        result = check_code(source)
        exercise = self.exercise
        with self._lock:
            if self._ladder_version != self._version:
                self._head = ("Your code changed since the last hint, so the hints start again for this code."
                              if self._ladder else "")
                self._ladder, self._ladder_version, self.hint_level = [], self._version, 0
            top = min(1 if result.ok else (3 if self._model_allowed() else 2), self.policy.allowed(self.settings).max_hint_level)
            if self.hint_level >= top:
                if self._ladder and self._ladder[-1][1] is None:
                    return "asking the model"  # already asked for this code: its answer will come here
                if top == 3 and (exercise.id, source) not in self._fixes:  # the model failed: ask again
                    self._ladder = [entry for entry in self._ladder if entry[0] != 3]
                    self._note = ""
                    return self._model_hint(exercise, source, result)
                self._note = ("That was the last hint for this code." if (result.ok and top) or top == 3 else
                              "That was the last hint for this code: " * bool(top) + self._why_no_model(top))
                self._render_hints()
                return self._ladder[-1][1] if self._ladder else ""
            self.hint_level += 1
            level = self.hint_level
            self._note = ""
            if level == 3:
                return self._model_hint(exercise, source, result)
            if result.ok:
                text = ("Solved: this code parses and passes the tests." if self._solved_version == self._version
                        else hint(1, source, result))
            else:
                text = hint(level, source, result, category=exercise.category)
                if level == 2 and exercise.hints:
                    text += "\n\n" + "\n".join(f"• {h}" for h in exercise.hints)
                if level == 2 and top == 2:  # the ladder ends here: say why
                    text += "\n\n" + self._why_no_model(top)
            self._ladder.append([level, text])
            self._render_hints()
        self.results.hint(exercise.id, level)
        return text

    def _model_allowed(self) -> bool:
        return self.policy.allowed(self.settings).model_fixes and self.fix_provider is not None

    def _why_no_model(self, top: int) -> str:  # why the ladder ends at `top`: the policy, exam mode, no model
        if (allowed := self.policy.allowed(self.settings)).max_hint_level <= top or "model_fixes" in allowed.by_policy:
            return f"(Hints {f'beyond level {top} ' * bool(top)}are switched off by this notebook's policy.)"
        return ("(Model hints are switched off.)" if not allowed.model_fixes
                else "(No model hints here: run %load_ext jupyter_codegemma for level 3.)")

    def _model_hint(self, exercise: Exercise, source: str, result: CheckResult) -> str:
        """Level 3 (under the lock): the answer already given for this code, else a request to the model."""
        key = (exercise.id, source)
        self.results.hint(exercise.id, 3)
        fix = self._fixes.get(key)
        if fix is not None:
            self._ladder.append([3, fix_text(fix)])
            self._render_hints()
            if fix.shown:
                self.results.model_fix_shown(exercise.id)
            return self._ladder[-1][1]
        self._ladder.append([3, None])
        self._render_hints()
        tag, cancel = (self.index, self._version), threading.Event()
        thread = threading.Thread(target=self._ask_model, args=(tag, key, exercise, source, result, cancel),
                                  name="codegemma-exercise-hint", daemon=True)
        self._request = FixRequest(tag, key, cancel, thread)
        self._model_thread = thread
        thread.start()
        return "asking the model"

    def _ask_model(self, tag, key, exercise: Exercise, source: str, result: CheckResult,
                   cancel: threading.Event) -> None:
        """On a background thread: ask the fix provider, keep its answer for this code, and show it if the
        code, the exercise and its state are still those of the request."""
        fix = ask_for_fix(self.fix_provider, exercise, source, result, cancel)
        with self._lock:
            if fix.answered:  # a real answer for this code, even if it is no longer wanted now
                self._fixes[key] = fix
            if (self.index, self._version) != tag:
                return  # stale: the code changed, the exercise was solved, or another one opened
            pending = [entry for entry in self._ladder if entry[1] is None]
            if not pending:
                return
            pending[-1][1] = fix_text(fix)
            self._render_hints()
        if fix.shown:
            self.results.model_fix_shown(exercise.id)

    def wait_for_hint(self, timeout: float = 300) -> str:
        """Wait for a level-3 hint in progress (for scripts and tests); the text of the latest hint shown."""
        thread = self._model_thread
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            latest = self._ladder[-1][1] if self._ladder else None
        return latest or ""

    def reset(self) -> None:
        if self.finished:
            return
        with self._lock:
            self._new_version(clear_ladder=True)
        self.editor.value = self.exercise.broken
        self.status.value = ""
        self._show_code()

    def next(self) -> None:
        """Next: the next exercise, or after the last one the summary of the set."""
        if self.finished:
            return
        if self.index + 1 < len(self.exercises):
            self.load(self.index + 1)
        else:
            self.show_summary()

    def start_over(self) -> None:
        """Back to the first exercise of the set (what was solved stays solved)."""
        self.load(0)

    def show_summary(self) -> None:
        """The end of the set: how many were solved, and per exercise solved or not, attempts and hints."""
        with self._lock:
            self._new_version(clear_ladder=True)
        self.title.value, self.summary.value = summary_html(self.exercises, self.results)
        self.finished = True
        self.children = self._summary_view

    @property
    def summary_text(self) -> str:
        """The summary as plain text (empty until the set is finished)."""
        return html_as_text(self.title.value + self.summary.value) if self.finished else ""
