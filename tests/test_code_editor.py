"""The exercise code editor (exercises/editor.py): its traits through real widget comm messages in a
kernel, the error line after a wrong Check, and the choice between it and the Textarea fallback.

The view itself (CodeMirror, the drawn mark) is tested in the browser (labextension/ui-tests/
tests/exercise.spec.ts) and its mark logic by Jest (labextension/test/errorMarks.spec.ts).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kernel_cells import run_cell


ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def ks(ks_in_folder):
    return ks_in_folder


def _opened(ks, code: str) -> dict[str, dict]:
    """Run code; the widgets it opened, comm id -> the state their comm_open carried."""
    reply, outputs = ks.execute(code, timeout=60)
    assert reply["status"] == "ok", reply
    return {m["content"]["comm_id"]: m["content"]["data"]["state"] for m in outputs
            if m["msg_type"] == "comm_open" and m["content"]["target_name"] == "jupyter.widget"}


def _update(ks, comm_id: str, predicate, timeout: float = 30) -> dict:
    """The first state update the kernel sent for comm_id that satisfies predicate."""
    data = ks.wait_reply(comm_id, lambda d: d.get("method") == "update" and predicate(d["state"]), timeout)
    return data["state"]


def test_the_model_names_the_labextensions_view():
    from jupyter_codegemma import __version__
    from jupyter_codegemma.exercises.editor import CodeEditor

    package = json.loads((ROOT / "labextension" / "package.json").read_text())
    editor = CodeEditor()
    assert editor._model_module == editor._view_module == package["name"]
    assert editor._model_module_version == f"^{package['version']}" == f"^{__version__}"
    # The names the view registers with ipywidgets (codeEditorWidget.ts) are the ones the model asks for.
    source = (ROOT / "labextension" / "src" / "exercises" / "codeEditorWidget.ts").read_text()
    assert f"_model_name: '{editor._model_name}'" in source and f"_view_name: '{editor._view_name}'" in source
    assert f"{editor._view_name}: Bound" in source


def test_traits_travel_both_ways_through_the_comm(ks):
    opened = _opened(ks, "from jupyter_codegemma.exercises import CodeEditor\n"
                         "e = CodeEditor(value='x = [1 2]\\n', description='Your code')")
    comm_id = run_cell(ks, "print(e.model_id)").strip()
    state = opened[comm_id]
    assert state["_model_name"] == "CodeEditorModel" and state["_view_module"] == "jupyter-codegemma"
    assert (state["value"], state["language"], state["description"]) == ("x = [1 2]\n", "python", "Your code")
    assert state["error_line"] is None and state["error_col"] is None and state["read_only"] is False

    # kernel -> view: one message carries line and column
    run_cell(ks, "e.mark(1, 8); e.read_only = True")
    assert _update(ks, comm_id, lambda s: s.get("error_line") == 1)["error_col"] == 8
    assert _update(ks, comm_id, lambda s: "read_only" in s)["read_only"] is True

    # view -> kernel: what the CodeMirror view sends when the student types above the marked line
    ks.send(comm_id, {"method": "update", "state": {"value": "# a list\nx = [1 2]\n", "error_line": 2,
                                                    "error_col": 8}, "buffer_paths": []})
    assert run_cell(ks, "print(repr(e.value), e.error_line, e.error_col)").strip() == "'# a list\\nx = [1 2]\\n' 2 8"
    run_cell(ks, "e.mark(None)")
    assert _update(ks, comm_id, lambda s: "error_line" in s and s["error_line"] is None)["error_col"] is None


def test_a_wrong_check_marks_the_error_line_in_the_editor(ks):
    opened = _opened(ks, "w = %exercise --category missing_colon --difficulty 1 --editor codemirror "
                         "--results results.json")
    ids = json.loads(run_cell(ks, "import json; print(json.dumps({k: getattr(w, k).model_id for k in "
                              "('editor', 'check_button', 'reset_button', 'status', 'code_view')}))"))
    assert opened[ids["editor"]]["_view_name"] == "CodeEditorView"
    # The mark is in the editor: the Textarea's separate code view is not shown.
    assert run_cell(ks, "print(w.code_view in w.children, w.editor in w.children)").split() == ["False", "True"]

    ks.send(ids["editor"], {"method": "update", "state": {"value": "temperature = 30\nif temperature > 25\n"
                                                          "    weather = 'hot'\n"}, "buffer_paths": []})
    ks.send(ids["check_button"], {"method": "custom", "content": {"event": "click"}})
    marked = _update(ks, ids["editor"], lambda s: s.get("error_line") == 2)
    assert marked["error_col"] == 20  # one past "if temperature > 25": where the colon goes
    status = _update(ks, ids["status"], lambda s: "Syntax error" in s.get("value", ""))["value"]
    assert "Syntax error on line 2, column 20" in status

    ks.send(ids["editor"], {"method": "update", "state": {"value": "temperature = 30\nif temperature > 25:\n"
                                                          "    weather = 'hot'\n"}, "buffer_paths": []})
    ks.send(ids["check_button"], {"method": "custom", "content": {"event": "click"}})
    assert _update(ks, ids["status"], lambda s: "Solved" in s.get("value", ""))
    assert run_cell(ks, "print(w.editor.error_line, w.solved)").split() == ["None", "True"]

    # Reset puts the broken code back, unmarked until the next Check.
    run_cell(ks, "w.editor.mark(2, 20)")
    ks.send(ids["reset_button"], {"method": "custom", "content": {"event": "click"}})
    assert run_cell(ks, "print(w.editor.value == w.exercise.broken, w.editor.error_line)").split() == ["True", "None"]


def test_the_textarea_is_used_where_the_labextension_is_absent_or_when_asked(monkeypatch, tmp_path):
    import jupyter_core.paths
    import ipywidgets as widgets

    from jupyter_codegemma.exercises import builtin_exercises
    from jupyter_codegemma.exercises.editor import CodeEditor, labextension_installed
    from jupyter_codegemma.exercises.widget import ExerciseWidget
    from jupyter_codegemma.kernel.settings import CodeGemma

    exercises = builtin_exercises()[:2]
    monkeypatch.setattr(jupyter_core.paths, "jupyter_path", lambda *parts: [str(tmp_path / "none")])
    assert not labextension_installed()
    fallback = ExerciseWidget(exercises)
    assert isinstance(fallback.editor, widgets.Textarea) and fallback.code_view in fallback.children
    fallback.check()
    assert "error on this line" in fallback.code_view.value

    installed = tmp_path / "labextensions"
    (installed / "jupyter-codegemma").mkdir(parents=True)
    (installed / "jupyter-codegemma" / "package.json").write_text('{"name": "jupyter-codegemma"}')
    monkeypatch.setattr(jupyter_core.paths, "jupyter_path", lambda *parts: [str(installed)])
    assert labextension_installed()
    assert isinstance(ExerciseWidget(exercises).editor, CodeEditor)
    # forced either way, by argument or by the kernel's setting
    assert isinstance(ExerciseWidget(exercises, editor="textarea").editor, widgets.Textarea)
    assert isinstance(ExerciseWidget(exercises, settings=CodeGemma(exercise_editor="textarea")).editor,
                      widgets.Textarea)
    with pytest.raises(ValueError, match="editor must be one of"):
        ExerciseWidget(exercises, editor="vim")
