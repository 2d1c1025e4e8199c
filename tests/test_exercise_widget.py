"""The exercise widget in a real kernel, driven through the widget comm messages a frontend sends."""

from __future__ import annotations

import html
import json

import pytest
from kernel_cells import run_cell

from jupyter_codegemma.exercises.explanations import PLAIN



@pytest.fixture(scope="module")
def ks(ks_in_folder):
    return ks_in_folder


def _ids(ks, name: str) -> dict:
    fields = ("editor", "check_button", "hint_button", "reset_button", "next_button", "status", "hint_view",
              "code_view", "attempts", "title", "summary", "start_over_button")
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
    assert "expected &#x27;:&#x27;" in status  # Python's own message, then the plain sentence (issue 18)
    assert html.escape(PLAIN["missing_colon"]) in status
    view = _latest(ks, ids["code_view"], lambda v: "error on this line" in v)
    assert "if temperature &gt; 25</div>" in view and "^" in view  # the line marked, with a caret
    assert _latest(ks, ids["attempts"], lambda v: v.startswith("Attempts: 1"))

    _click(ks, ids, "hint_button")
    assert "colon" in _latest(ks, ids["hint_view"], lambda v: "Hint 1" in v)  # the concept first
    _click(ks, ids, "hint_button")
    assert "Line 2, column 20" in _latest(ks, ids["hint_view"], lambda v: "Hint 2" in v).split("Hint 2")[1]

    _type(ks, ids, "temperature = 30\nif temperature > 25:\n    weather = 'hot'\n")
    _click(ks, ids, "check_button")
    assert "Solved" in _latest(ks, ids["status"], lambda v: "Solved" in v)
    assert "solved" in _latest(ks, ids["attempts"], lambda v: "solved" in v)
    record = json.loads((ks.folder / "results.json").read_text())["exercises"]["colon-if"]
    assert record["solved"] and record["attempts"] == 2 and record["hints"] == 2 and record["max_hint_level"] == 2
    # the code each Check saw, for `codegemma grade` to re-run on the teacher's side
    assert record["code"] == record["solved_code"] == "temperature = 30\nif temperature > 25:\n    weather = 'hot'\n"

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


# --- the hint ladder: current, kept, and in order ----------------------------------------------------------

# A fix provider the test controls: it records each call and answers when `gate` is set (the widget calls it
# on a background thread, as it calls service_fix_provider's on the engine worker).
_PROVIDER = """
import threading
from jupyter_codegemma.exercises.hints import ModelFix
gate, calls = threading.Event(), []
def scripted_fix(exercise, source, result):
    calls.append(source)
    gate.wait(60)
    return ModelFix(None, "", "the test's model has no fix", samples=5)
"""
_BROKEN = "temperature = 30\nif temperature > 25\n    weather = 'hot'\n"
_FIXED = "temperature = 30\nif temperature > 25:\n    weather = 'hot'\n"


def _hint_views(ks, ids) -> list[str]:
    """Every value the kernel sent for the hint view, in order."""
    return [d["state"]["value"] for d in ks.replies(ids["hint_view"])
            if d.get("method") == "update" and "value" in d.get("state", {})]


def test_a_model_hint_arriving_after_a_solve_is_dropped(ks):
    run_cell(ks, _PROVIDER + "w4 = %exercise --category missing_colon --difficulty 1 --editor textarea "
                 "--results results.json\nw4.fix_provider = scripted_fix")
    ids = _ids(ks, "w4")
    for _ in range(3):
        _click(ks, ids, "hint_button")
    _latest(ks, ids["hint_view"], lambda v: "Asking the model" in v)
    assert run_cell(ks, "print(len(calls))").strip() == "1"

    _type(ks, ids, _FIXED)  # the student fixes it while the model is still thinking
    _click(ks, ids, "check_button")
    _latest(ks, ids["status"], lambda v: "Solved" in v)
    view = _latest(ks, ids["hint_view"], lambda v: "Hint 2" in v and "Hint 3" not in v)  # the pending one goes
    assert "Hint 1" in view

    out = run_cell(ks, "gate.set(); w4.wait_for_hint(30); print(w4._model_thread.is_alive()); print(w4.hint_text)")
    assert out.split()[0] == "False"  # the answer has arrived ...
    assert "Hint 3" not in out and "No confident" not in out and "Asking" not in out  # ... and is not shown
    assert not any("No confident" in v for v in _hint_views(ks, ids))  # not even for a moment
    assert "Solved" in run_cell(ks, "print(w4.status.value)")
    record = json.loads((ks.folder / "results.json").read_text())["exercises"]["colon-if"]
    assert record["model_hints"] == 0 and record["max_hint_level"] == 3


def test_an_answer_for_an_exercise_left_behind_is_dropped(ks):
    run_cell(ks, _PROVIDER + "w5 = %exercise --category missing_colon --difficulty 1 --editor textarea "
                 "--results results.json\nw5.fix_provider = scripted_fix")
    ids = _ids(ks, "w5")
    for _ in range(3):
        _click(ks, ids, "hint_button")
    _latest(ks, ids["hint_view"], lambda v: "Asking the model" in v)
    _click(ks, ids, "next_button")
    _latest(ks, ids["hint_view"], lambda v: v == "")  # a new exercise starts without hints
    out = run_cell(ks, "gate.set(); w5.wait_for_hint(30); print(w5.exercise.id); print(repr(w5.hint_view.value))")
    assert out.split() == ["colon-def", "''"]


def test_hints_stay_in_order_and_a_second_press_does_not_ask_the_model_again(ks):
    run_cell(ks, _PROVIDER + "gate.set()\nw6 = %exercise --category missing_colon --difficulty 1 "
                 "--editor textarea --results results.json\nw6.fix_provider = scripted_fix")
    ids = _ids(ks, "w6")
    _click(ks, ids, "hint_button")
    _latest(ks, ids["hint_view"], lambda v: "Hint 1" in v)
    _click(ks, ids, "hint_button")
    view = _latest(ks, ids["hint_view"], lambda v: "Hint 2" in v)
    assert "Hint 1" in view and view.index("Hint 1") < view.index("Hint 2")  # level 2 comes under level 1
    assert "Line 2, column 20" not in view.split("Hint 2")[0] and "Line 2, column 20" in view.split("Hint 2")[1]
    _click(ks, ids, "hint_button")
    view = _latest(ks, ids["hint_view"], lambda v: "No confident" in v)
    assert view.index("Hint 1") < view.index("Hint 2") < view.index("Hint 3") < view.index("No confident")

    _click(ks, ids, "hint_button")  # again, same code: the answer stays, the model is not asked
    view = _latest(ks, ids["hint_view"], lambda v: "last hint for this code" in v)
    assert view.count("Hint 3") == 1 and "No confident" in view
    assert run_cell(ks, "w6.wait_for_hint(30); print(len(calls))").strip() == "1"

    _click(ks, ids, "reset_button")  # the same broken code again: its answer comes at once
    _latest(ks, ids["hint_view"], lambda v: v == "")
    before = len(_hint_views(ks, ids))
    for _ in range(3):
        _click(ks, ids, "hint_button")
    assert run_cell(ks, "w6.wait_for_hint(30); print(len(calls), w6.hint_level)").split() == ["1", "3"]
    after_reset = _hint_views(ks, ids)[before:]
    assert "No confident" in after_reset[-1]
    assert not any("Asking the model" in v for v in after_reset)  # it never waited for the model

    # Other code: the ladder starts again for it, and says so.
    _type(ks, ids, _BROKEN.replace("25", "25;"))
    _click(ks, ids, "hint_button")
    view = _latest(ks, ids["hint_view"], lambda v: "start again" in v)
    assert "Hint 1" in view and "Hint 2" not in view and "The mistake: a missing colon" in html.unescape(view)


def test_hint_two_names_the_exercises_kind_of_mistake(ks):
    run_cell(ks, "w7 = %exercise --category missing_colon --difficulty 1 --editor textarea --results results.json")
    ids = _ids(ks, "w7")
    _type(ks, ids, _BROKEN.replace("25", "25;"))  # a ';' for the ':': Python says only "invalid syntax"
    _click(ks, ids, "hint_button")
    _click(ks, ids, "hint_button")
    view = html.unescape(_latest(ks, ids["hint_view"], lambda v: "Hint 2" in v))
    assert 'Python says "invalid syntax"' in view and "The mistake: a missing colon ':'" in view


def test_next_after_the_last_exercise_shows_the_summary(ks):
    exercises = [
        {"id": "one", "title": "First", "category": "missing_colon", "broken": _BROKEN, "solution": _FIXED,
         "tests": "assert weather == 'hot'\n"},
        {"id": "two", "title": "Second", "category": "missing_comma", "broken": "x = [1 2]\n",
         "solution": "x = [1, 2]\n", "tests": "assert x == [1, 2]\n"},
    ]
    (ks.folder / "pair.json").write_text(json.dumps({"exercises": exercises}))
    run_cell(ks, "w8 = %exercise --file pair.json --editor textarea --results pair_results.json")
    ids = _ids(ks, "w8")
    _click(ks, ids, "hint_button")
    _type(ks, ids, _FIXED)
    _click(ks, ids, "check_button")
    _latest(ks, ids["status"], lambda v: "Solved" in v)
    _click(ks, ids, "next_button")
    _latest(ks, ids["title"], lambda v: "Second" in v)
    _click(ks, ids, "next_button")  # after the last one: the summary, not exercise 1 again
    assert "1 of 2 solved" in _latest(ks, ids["title"], lambda v: "End of the set" in v)
    summary = html.unescape(_latest(ks, ids["summary"], lambda v: "solved" in v))
    assert "1 of 2 solved, 1 hint used" in summary
    assert "<td style='padding:2px 10px 2px 0;text-align:left'>First</td>" in summary
    first, second = summary.split("First")[1], summary.split("Second")[1]
    assert "✓ solved" in first.split("</tr>")[0] and "not yet" in second.split("</tr>")[0]
    assert run_cell(ks, "print(w8.finished, w8.start_over_button in w8.children[3].children, "
                        "w8.editor in w8.children)").split() == ["True", "True", "False"]

    _click(ks, ids, "start_over_button")
    assert "First" in _latest(ks, ids["title"], lambda v: "(1 of 2)" in v)
    assert run_cell(ks, "print(w8.finished, w8.exercise.id, w8.progress.value)").split() == ["False", "one", "1"]


# --- %exercise: a mistake is one line, never a traceback -----------------------------------------------------

_GOOD_YAML = """exercises:
- id: colon
  category: missing_colon
  difficulty: 1
  broken: |
    if x
        pass
  solution: |
    if x:
        pass
  tests: |
    assert True
"""


def _one_line(ks, code: str) -> str:
    """Run a cell with a user's mistake: it prints exactly one line, and no traceback reaches the output."""
    reply, outputs = ks.execute(code, timeout=60)
    text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    shown = text + "".join("".join(m["content"].get("traceback", [])) for m in outputs if m["msg_type"] == "error")
    assert reply["status"] == "ok" and "Traceback" not in shown and "Error" not in shown, shown
    lines = text.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("exercise: "), text
    return lines[0]


@pytest.mark.parametrize("name,text,expected", [
    (None, None, ["/nonexistent.yaml: no such file"]),
    ("typo.yaml", _GOOD_YAML.replace("  tests: |", "  tests |"),
     ["typo.yaml, line 11", "not valid YAML", "':'", "'tests |'"]),
    ("no_solution.yaml", _GOOD_YAML.replace("  solution: |\n    if x:\n        pass\n", ""),
     ["no_solution.yaml, line 2", "exercise 'colon'", "missing solution"]),
    ("category.yaml", _GOOD_YAML.replace("missing_colon", "colons"),
     ["category.yaml, line 2", "exercise 'colon'", "category 'colons' is not one of"]),
    ("difficulty.yaml", _GOOD_YAML.replace("difficulty: 1", "difficulty: 5"),
     ["difficulty.yaml, line 2", "difficulty must be 1, 2 or 3, got 5"]),
])
def test_a_wrong_exercise_file_is_one_line(ks, name, text, expected):
    if name is None:
        path = "/nonexistent.yaml"
    else:
        path = ks.folder / name
        path.write_text(text)
    line = _one_line(ks, f"%exercise --file {path}")
    assert all(part in line for part in expected), line


def test_wrong_options_and_a_broken_results_file_are_one_line(ks):
    assert "invalid choice: 5" in _one_line(ks, "%exercise --difficulty 5")
    assert "no closing quotation" in _one_line(ks, '%exercise --file "week 3.yaml')
    (ks.folder / "cut.json").write_text('{"version": 1, "exercises": {"colon-if": {"attempts": 2,')
    line = _one_line(ks, "%exercise --results cut.json")
    assert "cut.json: not valid JSON" in line and "truncated" in line
    assert (ks.folder / "cut.json").read_text().endswith('"attempts": 2,')  # a student's file is never overwritten
    assert "the folder" in _one_line(ks, "%exercise --results no/such/folder/results.json")
    assert "no place in this code" in _one_line(ks, "%%exercise --category missing_comma --results results.json\n"
                                                    "x = 1\n")


def test_quotes_around_an_option_are_not_part_of_it(ks):
    (ks.folder / "with space.yaml").write_text(_GOOD_YAML)
    out = run_cell(ks, "w9 = get_ipython().run_cell_magic('exercise', '--id squares --title \"Squares\" "
                       "--category missing_comma --results results.json', 'squares = [1, 4, 9]\\n')\n"
                       "w10 = %exercise --file 'with space.yaml' --results results.json\n"
                       "print(w9.exercise.title, w9.exercise.id, w10.exercise.id)")
    assert out.split() == ["Squares", "squares", "colon"]
