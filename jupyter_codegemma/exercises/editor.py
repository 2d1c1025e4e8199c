"""The exercise code editor: a CodeMirror view in JupyterLab, from the package's labextension.

    editor = CodeEditor(value="if x > 1\\n    y = 2\\n", description="Your code")
    editor.error_line, editor.error_col = 1, 9     # mark a syntax error (1-based, as Python reports it)

The view (`labextension/src/exercises/codeEditorWidget.ts`) highlights the code, keeps `value` in sync with
what the student types, and draws the error line with a caret; the mark follows the student's edits
(the view writes its new place back) until the next Check sets it again. A frontend without the
labextension cannot show it: `labextension_installed()` tells the exercise widget when to fall back
to a plain Textarea.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import ipywidgets as widgets
from traitlets import Bool, Int, Unicode

from .._version import __version__

__all__ = ["MODULE_NAME", "CodeEditor", "labextension_installed"]

# The labextension's npm name: its widgets are registered with ipywidgets under it (see codeEditorWidget.ts).
MODULE_NAME = "jupyter-codegemma"
# A semver range the registered version must satisfy; package.json and _version.py share one version.
MODULE_VERSION = f"^{__version__}"


class CodeEditor(widgets.DOMWidget):
    """A code editor with syntax highlighting and a marked error line (the labextension's CodeMirror view)."""

    _model_name = Unicode("CodeEditorModel").tag(sync=True)
    _view_name = Unicode("CodeEditorView").tag(sync=True)
    _model_module = Unicode(MODULE_NAME).tag(sync=True)
    _view_module = Unicode(MODULE_NAME).tag(sync=True)
    _model_module_version = Unicode(MODULE_VERSION).tag(sync=True)
    _view_module_version = Unicode(MODULE_VERSION).tag(sync=True)

    value = Unicode("", help="The code in the editor (follows the student's typing).").tag(sync=True)
    language = Unicode("python", help="The highlighting: python, ipython or text.").tag(sync=True)
    error_line = Int(None, allow_none=True, help="1-based line of the error to mark; None: no mark.").tag(sync=True)
    error_col = Int(None, allow_none=True, help="1-based column of the caret on that line; None: the line only."
                    ).tag(sync=True)
    read_only = Bool(False, help="Show the code without letting it be edited.").tag(sync=True)
    description = Unicode("", help="The editor's accessible label (aria-label).").tag(sync=True)

    def mark(self, line: int | None, col: int | None = None) -> None:
        """Mark an error (or clear the mark with None), line and column in one message."""
        with self.hold_sync():
            self.error_line = line
            self.error_col = col if line is not None else None


def labextension_installed() -> bool:
    """Whether the labextension is in one of Jupyter's labextensions folders of this environment.

    This is what JupyterLab (and Notebook 7) on this Python environment load; a frontend running
    elsewhere (another environment, VS Code) may still lack it: pass `editor="textarea"` there.
    """
    from jupyter_core.paths import jupyter_path

    for folder in jupyter_path("labextensions"):
        package = Path(folder) / MODULE_NAME / "package.json"
        try:
            if json.loads(package.read_text(encoding="utf-8")).get("name") == MODULE_NAME:
                return True
        except (OSError, ValueError):
            continue
    return False


# --- which editor an exercise widget uses ------------------------------------------------------------

EDITOR_STYLE = ("<style>.codegemma-exercise-editor textarea{font-family:monospace;font-size:13px;"
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
