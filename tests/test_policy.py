"""The notebook's AI policy (issue 17): parsing and the one "is it allowed" decision (kernel/policy.py), then
in a real kernel (jupyter_client): the `policy` message, the refusals of completions and magics, the exercise
widget's capped hints, `%codegemma policy`, and the provenance the exercise results record.

No test here loads the model: everything the policy refuses is refused before the model is asked."""

from __future__ import annotations

import json

import pytest

from jupyter_codegemma.kernel.policy import (NotebookPolicy, PolicyError, PolicyState, allowed, loosens,
                                             parse_policy, parse_policy_words)
from kernel_cells import run_cell
from protocol_golden import validate_reply

CLASS_POLICY = {"completions": False, "generation": False, "max_hint_level": 1}


class _Switches:  # the three kernel switches of the CodeGemma configurable, as %codegemma disable sets them
    def __init__(self, completions=True, hints=True, generation=True):
        self.completions_enabled, self.hints_enabled, self.generation_enabled = completions, hints, generation


def test_a_policy_round_trips_through_its_json_and_its_words():
    policy = parse_policy({**CLASS_POLICY, "unknown": [1]})
    assert policy == NotebookPolicy(completions=False, generation=False, max_hint_level=1)
    assert policy.to_json() == CLASS_POLICY and parse_policy(policy.to_json()) == policy
    assert parse_policy(None) is None and parse_policy({}).to_json() == {}
    words = parse_policy_words("completions=off generation=off max_hint_level=1".split(), None)
    assert words == policy
    assert parse_policy_words(["model_fixes=off"], policy).to_json() == {**CLASS_POLICY, "model_fixes": False}
    assert parse_policy_words(["clear"], policy) is None
    assert policy.describe() == "completions off, generation off, hints up to level 1"
    assert NotebookPolicy(exam=True).describe() == ("exam mode: completions off, generation off, model fixes off, "
                                                    "hints up to level 1")


@pytest.mark.parametrize("data,message", [
    ([False], '"policy" must be an object or null, got an array'),
    ({"completions": "off"}, 'policy: "completions" must be true or false, got a string'),
    ({"max_hint_level": 4}, 'policy: "max_hint_level" must be a whole number in 0..3, got 4'),
    ({"max_hint_level": True}, 'policy: "max_hint_level" must be a whole number in 0..3, got True'),
])
def test_a_bad_policy_is_one_clear_line(data, message):
    with pytest.raises(PolicyError, match="^" + message.replace(".", r"\.") + "$"):
        parse_policy(data)


@pytest.mark.parametrize("words,message", [
    (["completions"], "expected NAME=VALUE with NAME one of completions, generation, max_hint_level, model_fixes, exam"),
    (["completions=maybe"], "completions takes on or off, not 'maybe'"),
    (["max_hint_level=5"], "max_hint_level takes 0, 1, 2 or 3, not '5'"),
])
def test_bad_policy_words_are_named(words, message):
    with pytest.raises(PolicyError) as caught:
        parse_policy_words(words, None)
    assert str(caught.value).startswith(message)


def test_allowed_is_what_both_the_kernel_and_the_policy_allow_and_names_who_refused():
    everything = allowed(_Switches(), None)
    assert (everything.completions, everything.generation, everything.model_fixes, everything.max_hint_level) == (
        True, True, True, 3)
    exam = allowed(_Switches(), NotebookPolicy(exam=True))
    assert (exam.completions, exam.generation, exam.model_fixes, exam.max_hint_level) == (False, False, False, 1)
    assert exam.refusal("completions") == "completions are switched off by this notebook's policy"
    kernel_off = allowed(_Switches(completions=False, hints=False), NotebookPolicy(generation=False))
    assert not kernel_off.completions and not kernel_off.model_fixes and not kernel_off.generation
    assert kernel_off.refusal("completions") == ("completions are switched off in this kernel "
                                                 "(%codegemma enable completions switches them on)")
    assert kernel_off.refusal("generation").endswith("switched off by this notebook's policy")


def test_removing_or_loosening_a_policy_is_remembered():
    strict = NotebookPolicy(completions=False, max_hint_level=1)
    assert loosens(strict, None) and loosens(strict, NotebookPolicy(max_hint_level=2))
    assert not loosens(strict, NotebookPolicy(completions=False, max_hint_level=0)) and not loosens(None, strict)
    assert loosens(NotebookPolicy(exam=True), NotebookPolicy(completions=False, generation=False, max_hint_level=1))
    state = PolicyState()
    state.set(strict)
    state.set(NotebookPolicy(completions=False, generation=False, max_hint_level=0))  # stricter: fine
    assert state.provenance() == {"policy": {"completions": False, "generation": False, "max_hint_level": 0},
                                  "policy_removed": False}
    state.set(None)
    state.set(strict)  # put back: the removal stays on record
    assert state.provenance() == {"policy": strict.to_json(), "policy_removed": True}


# --- in a real kernel --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernel(ks_in_folder):
    ks = ks_in_folder
    ks.policy_comm = ks.open_comm()
    return ks


def _policy_request(ks, policy) -> dict:
    """Send a `policy` request; the kernel answers with a status (validated as the frontend would)."""
    before = len(ks.replies(ks.policy_comm))
    ks.send(ks.policy_comm, {"v": 1, "type": "policy", "policy": policy})
    ks._wait(lambda: any(r["type"] in ("status", "error") for r in ks.replies(ks.policy_comm)[before:]), 30,
             "the answer to a policy request")
    reply = [r for r in ks.replies(ks.policy_comm)[before:] if r["type"] in ("status", "error")][0]
    return validate_reply(reply)


def test_the_kernel_enforces_the_notebooks_policy_and_records_its_removal(kernel):
    ks = kernel
    status = _policy_request(ks, CLASS_POLICY)
    assert status["type"] == "status" and status["policy"] == CLASS_POLICY
    assert status["completions_enabled"] is False

    # completions: a `disabled` error that names the policy, before any model is asked
    refused = ks.complete(ks.policy_comm, "def add(a, b):\n    return")
    assert [r["type"] for r in refused] == ["error"]
    assert refused[0]["code"] == "disabled"
    assert refused[0]["message"] == "completions are switched off by this notebook's policy"

    # %%codegemma and the conversation commands: one line each
    assert run_cell(ks, "%%codegemma\nplot the column means").strip() == (
        "codegemma: %%codegemma is switched off by this notebook's policy.")
    assert run_cell(ks, "%codegemma explain").strip() == (
        "codegemma: %codegemma explain is switched off by this notebook's policy.")
    assert "completions off, generation off, hints up to level 1" in run_cell(ks, "%codegemma status")

    # the exercise widget stops at level 1, and its results record the policy
    run_cell(ks, "w = %exercise --category missing_colon --difficulty 1 --results results.json")
    first = run_cell(ks, "print(w.next_hint())")
    assert first.startswith("The mistake: ")  # level 1: the concept
    run_cell(ks, "w.next_hint(); w.next_hint()")
    assert run_cell(ks, "print(w.hint_level, w._model_thread)").split() == ["1", "None"]
    assert "Hints beyond level 1 are switched off by this notebook's policy" in run_cell(ks, "print(w.hint_text)")
    record = json.loads((ks.folder / "results.json").read_text())["exercises"]["colon-if"]
    assert record["policy"] == CLASS_POLICY and record["policy_removed"] is False and record["max_hint_level"] == 1

    # a student deletes the metadata: the frontend sends null; everything is back, and the results say so
    status = _policy_request(ks, None)
    assert status["policy"] is None and status["completions_enabled"] is True
    assert "Hint 2" in run_cell(ks, "w.next_hint(); print(w.hint_text)")
    record = json.loads((ks.folder / "results.json").read_text())["exercises"]["colon-if"]
    assert record["policy"] is None and record["policy_removed"] is True and record["max_hint_level"] == 2
    assert "removed or loosened" in run_cell(ks, "%codegemma policy")


def test_percent_codegemma_policy_sets_it_and_asks_the_frontend_to_store_it(kernel):
    ks = kernel
    before = len(ks.replies(ks.policy_comm))
    out = run_cell(ks, "%codegemma policy completions=off generation=off max_hint_level=1 model_fixes=off exam=on")
    assert out.strip().split(";")[0] == ("codegemma: this notebook's policy: exam mode: completions off, generation "
                                         "off, model fixes off, hints up to level 1")
    ks._wait(lambda: any(r["type"] == "policy" for r in ks.replies(ks.policy_comm)[before:]), 10, "a policy reply")
    sent = [validate_reply(r) for r in ks.replies(ks.policy_comm)[before:] if r["type"] == "policy"]
    assert sent == [{"v": 1, "type": "policy", "policy": {"completions": False, "generation": False,
                                                          "max_hint_level": 1, "model_fixes": False, "exam": True}}]
    assert _policy_request(ks, sent[0]["policy"])["completions_enabled"] is False  # the frontend's echo: no change
    assert run_cell(ks, "%codegemma policy exam=maybe").strip() == "codegemma: exam takes on or off, not 'maybe'"
    run_cell(ks, "%codegemma policy clear")
    assert ks.wait_reply(ks.policy_comm, lambda r: r["type"] == "policy" and r["policy"] is None, 10)
    assert ks.status(ks.policy_comm)["policy"] is None


def test_the_widget_asks_the_model_for_no_fix_when_the_policy_forbids_model_fixes(tmp_path):
    from jupyter_codegemma.exercises import ExerciseWidget, builtin_exercises
    from jupyter_codegemma.exercises.hints import ModelFix
    from jupyter_codegemma.exercises.results import Results

    asked = []

    def provider(exercise, source, result):  # the model's level 3: must not be asked under this policy
        asked.append(source)
        return ModelFix(None, "", "not asked")

    state = PolicyState()
    state.set(NotebookPolicy(model_fixes=False))
    exercise = [e for e in builtin_exercises() if e.category == "missing_colon"][0]
    widget = ExerciseWidget(exercise, results=Results(tmp_path / "r.json", policy=state), settings=_Switches(),
                            fix_provider=provider, policy=state)
    for _ in range(3):
        widget.next_hint()
    assert widget.hint_level == 2 and widget._model_thread is None and asked == []
    assert widget.hint_text.endswith("(Hints beyond level 2 are switched off by this notebook's policy.)")
    state.set(None)  # the policy is removed: level 3 is the model's again
    widget.next_hint()
    widget.wait_for_hint(30)
    assert asked == [exercise.broken] and widget.hint_level == 3
    record = json.loads((tmp_path / "r.json").read_text())["exercises"][exercise.id]
    assert record["policy"] is None and record["policy_removed"] is True
