"""The kernel-context evaluation sets (evaluation/notebook_state.py): their data, their scoring, and that
each notebook-state case's answer is among the facts the kernel would give at its cursor (run here
in-process: the real kernel and the model run in `codegemma eval --task notebook-state`)."""

from __future__ import annotations

import pytest

from jupyter_codegemma.evaluation.notebook_state import KERNEL_SETS, StateCase, load_cases, namespace_in_process
from jupyter_codegemma.kernel import live_namespace
from jupyter_codegemma.kernel.live_namespace import read_facts


def test_the_sets_load_with_unique_ids_and_dataframes_among_them():
    for name in KERNEL_SETS:
        cases = load_cases(name)
        assert len(cases) >= 40, name
        assert len({c.id for c in cases}) == len(cases)
        assert all(c.accept for c in cases)
    assert sum("pandas" in c.setup or "pandas" in "".join(c.cells) for c in load_cases("notebook-state")) >= 8
    assert all(c.exact for c in load_cases("library-lines"))
    with pytest.raises(ValueError, match="unknown kernel set"):
        load_cases("humaneval")


def test_scoring():
    case = StateCase(id="x", setup="", cells=("a = 1",), cursor="d['", suffix="", accept=("name", "age"))
    assert case.prefix == "a = 1\n\nd['"
    assert case.passes("name']") and case.passes("age") and not case.passes("nam") and not case.passes("x")
    line = StateCase(id="y", setup="", cells=(), cursor="    ", suffix="", accept=("self.run()",), exact=True)
    assert line.passes("self.run()  ") and not line.passes("self.run(1)")


def test_each_notebook_state_answer_is_in_the_facts_at_its_cursor(tmp_path, monkeypatch):
    monkeypatch.setattr(live_namespace, "BUDGET_S", 5.0)  # what is read, not how fast (bench/)
    missing = []
    for number, case in enumerate(load_cases("notebook-state")):
        workdir = tmp_path / f"case{number}"
        workdir.mkdir()
        facts = read_facts(namespace_in_process(case, workdir), case.prefix)
        text = "\n".join(facts.lines)
        if not all(answer.rstrip("=") in text for answer in case.accept):
            missing.append((case.id, text))
    assert missing == [], "\n".join(map(str, missing))
