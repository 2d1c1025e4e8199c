"""The exercise widget in a real kernel, driven through the widget comm messages a frontend sends."""

from __future__ import annotations

import json

import pytest
from kernel_cells import run_cell



@pytest.fixture(scope="module")
def ks(ks_in_folder):
    return ks_in_folder


def _ids(ks, name: str) -> dict:
    fields = ("editor", "check_button", "hint_button", "reset_button", "next_button", "status", "hint_view",
              "code_view", "attempts")
    out = run_cell(ks, "import json; print(json.dumps({k: getattr(%s, k).model_id for k in %r}))" % (name, fields))
    return json.loads(out)


def _type(ks, ids, code: str) -> None:  # what the frontend sends when the student edits the Textarea
    ks.send(ids["editor"], {"method": "update", "state": {"value": code}, "buffer_paths": []})


def _click(ks, ids, button: str) -> None:
    ks.send(ids[button], {"method": "custom", "content": {"event": "click"}})


def _latest(ks, comm_id: str, predicate, timeout: float = 30) -> str:
    """The newest `value` the kernel sent for a widget that satisfies predicate."""
    data = ks.wait_reply(comm_id, lambda d: d.get("method") == "update" and predicate(d["state"].get("value", "")),
                         timeout)
    return data["state"]["value"]


def test_widget_wrong_attempt_hint_and_solution_through_comms(ks):
    # The Textarea fallback and its marked code view (the CodeMirror editor: tests/test_code_editor.py).
    run_cell(ks, "w = %exercise --category missing_colon --difficulty 1 --editor textarea --results results.json")
    ids = _ids(ks, "w")
    assert run_cell(ks, "print(w.exercise.id)").strip() == "colon-if"

    _type(ks, ids, "temperature = 30\nif temperature > 25\n    weather = 'hot'\n")  # still broken
    _click(ks, ids, "check_button")
    status = _latest(ks, ids["status"], lambda v: "Syntax error on line 2" in v)
    assert "expected &#x27;:&#x27;" in status
    view = _latest(ks, ids["code_view"], lambda v: "error on this line" in v)
    assert "if temperature &gt; 25</div>" in view and "^" in view  # the line marked, with a caret
    assert _latest(ks, ids["attempts"], lambda v: v.startswith("Attempts: 1"))

    _click(ks, ids, "hint_button")
    assert "Line 2, column 20" in _latest(ks, ids["hint_view"], lambda v: "Hint 1" in v)
    _click(ks, ids, "hint_button")
    assert "colon" in _latest(ks, ids["hint_view"], lambda v: "Hint 2" in v)

    _type(ks, ids, "temperature = 30\nif temperature > 25:\n    weather = 'hot'\n")
    _click(ks, ids, "check_button")
    assert "Solved" in _latest(ks, ids["status"], lambda v: "Solved" in v)
    assert "solved" in _latest(ks, ids["attempts"], lambda v: "solved" in v)
    record = json.loads((ks.folder / "results.json").read_text())["exercises"]["colon-if"]
    assert record["solved"] and record["attempts"] == 2 and record["hints"] == 2 and record["max_hint_level"] == 2

    _click(ks, ids, "next_button")
    assert run_cell(ks, "print(w.exercise.id, w.progress.value)").split() == ["colon-def", "1"]


def test_exam_mode_stops_the_ladder_before_the_model(ks):
    run_cell(ks, "%codegemma disable hints\nw2 = %exercise --category keyword --difficulty 1 --results results.json")
    ids = _ids(ks, "w2")
    for _ in range(3):
        _click(ks, ids, "hint_button")
    assert "switched off" in _latest(ks, ids["hint_view"], lambda v: "switched off" in v)
    assert run_cell(ks, "print(w2.hint_level, w2._model_thread)").split() == ["2", "None"]  # no model asked
    run_cell(ks, "%codegemma enable hints")


@pytest.mark.parametrize("tests,expected", [
    ("import os; os._exit(1)", "exited with code 1"),
    ("while True: pass", "CPU time"),
    ("x = bytearray(10**10)", "MB of memory"),
])
def test_runaway_tests_are_stopped_and_the_kernel_is_unaffected(ks, tests, expected):
    cell = f"# broken\nx = [1 2]\n# solution\nx = [1, 2]\n# tests\n{tests}\n"
    run_cell(ks, f"w3 = get_ipython().run_cell_magic('exercise', '--id runaway --results results.json', {cell!r})\n"
         "from jupyter_codegemma.exercises.sandbox import Limits\nw3.limits = Limits(cpu_s=1, wall_s=5)\n"
         "kernel_marker = 41")
    ids = _ids(ks, "w3")
    _type(ks, ids, "x = [1, 2]\n")
    _click(ks, ids, "check_button")
    assert expected in _latest(ks, ids["status"], lambda v: "parses, but" in v, timeout=20)
    assert run_cell(ks, "kernel_marker += 1; print(kernel_marker, 'x' in globals())").split() == ["42", "False"]
