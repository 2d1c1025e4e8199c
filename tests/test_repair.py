"""The repair search behind level-3 hints: each kind of edit on small real examples, never an unverified fix,
tests that never finish, the batch sandbox, and the model's ranking (the real Gemma 3 270M)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from jupyter_codegemma.exercises import builtin_exercises
from jupyter_codegemma.exercises.repair import (SearchLimits, as_model_fix, engine_scorer, search_repairs)
from jupyter_codegemma.exercises.sandbox import Limits, run_tests
from jupyter_codegemma.exercises.sandbox_batch import run_many

QUICK = SearchLimits(candidate=Limits(cpu_s=1, wall_s=1.0, memory_mb=256))

CASES = [  # (kind of edit, broken, tests, the fix expected first without a model)
    ("missing ':'", "x = 3\nif x > 2\n    y = 1\n", "assert y == 1", "x = 3\nif x > 2:\n    y = 1\n"),
    ("missing ')'", "total = max(3, 4\n", "assert total == 4", "total = max(3, 4)\n"),
    ("missing '(' between two names", "def twice(x):\n    return 2 * x\nx = 3\ny = twicex)\n", "assert y == 6",
     "def twice(x):\n    return 2 * x\nx = 3\ny = twice(x)\n"),
    ("wrong bracket", "ages = {'a': 1, 'b': 2]\n", "assert ages['b'] == 2", "ages = {'a': 1, 'b': 2}\n"),
    ("missing ','", "def f(a b):\n    return a - b\n", "assert f(5, 2) == 3",
     "def f(a, b):\n    return a - b\n"),
    ("unterminated string", "name = 'Ada\n", "assert name == 'Ada'", "name = 'Ada'\n"),
    ("quotes of the wrong kind", "s = 'It's'\n", "assert s == \"It's\"", "s = \"It's\"\n"),
    ("text without quotes", "msg = hello there\n", "assert msg == 'hello there'", 'msg = "hello there"\n'),
    ("'=' for '=='", "x = 1\nif x = 1:\n    y = 2\n", "assert y == 2", "x = 1\nif x == 1:\n    y = 2\n"),
    ("a line's indentation", "def f(x):\nreturn x + 1\n", "assert f(1) == 2", "def f(x):\n    return x + 1\n"),
    ("a block's indentation", "def g(n):\n    if n:\n        a = 1\n      return a\n", "assert g(1) == 1",
     "def g(n):\n    if n:\n        a = 1\n    return a\n"),
    ("keyword typo 'esle'", "if 1 > 2:\n    r = 1\nesle:\n    r = 2\n", "assert r == 2",
     "if 1 > 2:\n    r = 1\nelse:\n    r = 2\n"),
    ("keyword typo 'retrun'", "def sq(x):\n    retrun x * x\n", "assert sq(3) == 9",
     "def sq(x):\n    return x * x\n"),
    ("keyword typo 'improt'", "improt math\nr = math.sqrt(16)\n", "assert r == 4", "import math\nr = math.sqrt(16)\n"),
    ("keyword typo 'whiel'", "n = 3\nwhiel n > 0:\n    n -= 1\n", "assert n == 0", "n = 3\nwhile n > 0:\n    n -= 1\n"),
    ("'else if'", "x = 5\nif x < 3:\n    s = 'a'\nelse if x < 9:\n    s = 'b'\n", "assert s == 'b'",
     "x = 5\nif x < 3:\n    s = 'a'\nelif x < 9:\n    s = 'b'\n"),
    ("elif after else", "x = 5\nif x < 3:\n    s = 'a'\nelse:\n    s = 'c'\nelif x < 9:\n    s = 'b'\n",
     "assert s == 'b'", "x = 5\nif x < 3:\n    s = 'a'\nelif x < 9:\n    s = 'b'\nelse:\n    s = 'c'\n"),
    ("missing def", "twice(x):\n    return 2 * x\n", "assert twice(2) == 4", "def twice(x):\n    return 2 * x\n"),
    ("Python 2 print", "n = 2\nprint n\n", "assert n == 2", "n = 2\nprint(n)\n"),
    ("stray character", "$count = 3\n", "assert count == 3", "count = 3\n"),
    ("missing operator", "x = 4\ny = 3x\n", "assert y == 12", "x = 4\ny = 3 * x\n"),
    ("missing '**'", "def p(b, e):\n    return b e\n", "assert p(2, 5) == 32", "def p(b, e):\n    return b ** e\n"),
    ("a Python 2 debugging print of a name not yet defined", "print 'n:', n\nn = 2\n", "assert n == 2", "n = 2\n"),
    ("keyword as a name", "class = 'B'\nlabel = 'class ' + class\n", "assert label == 'class B'",
     "class_ = 'B'\nlabel = 'class ' + class_\n"),
    ("two edits: ':' and 'retrun'", "def f(x)\n    retrun x\n", "assert f(3) == 3", "def f(x):\n    return x\n"),
]


@pytest.mark.parametrize("kind,broken,tests,expected", CASES, ids=[c[0] for c in CASES])
def test_the_search_finds_the_fix_for_each_kind_of_edit(kind, broken, tests, expected):
    found = search_repairs(broken, tests, limits=QUICK)
    assert found.best is not None, (kind, found.notes)
    assert found.best.source == expected, (kind, found.fixes[:3])
    assert found.ranked_by == "edit size"  # no model here
    assert found.best.cost == (2 if kind.startswith(("two edits", "a Python 2 debugging")) else 1)


def test_only_fixes_that_pass_the_tests_are_offered():
    # `2 3` compiles as 2 * 3, 2 + 3, 2 - 3, 2 / 3, (2, 3) ... : only the product passes these tests
    found = search_repairs("x = 2 3\n", "assert x == 6", limits=QUICK)
    assert found.compiled > 1 and [r.source for r in found.fixes] == ["x = 2 * 3\n"]
    assert all(run_tests(r.source, "assert x == 6").passed for r in found.fixes)
    shown = as_model_fix(found, "x = 2 3\n")
    assert shown.shown and "+x = 2 * 3" in shown.diff
    assert shown.message().startswith("A fix that passes the exercise's tests (line 1: insert '*' between '2' and '3')")
    nothing = search_repairs("x = 2 3\n", "assert x == 7", limits=QUICK)
    assert nothing.fixes == [] and nothing.verified > 0
    fix = as_model_fix(nothing, "x = 2 3\n")
    assert not fix.shown and "passes the exercise's tests" in fix.reason


def test_the_models_samples_join_the_pool_only_when_the_search_finds_nothing():
    # `return` outside a function: no small edit helps; the model wraps the loop in the function the tests call
    broken = "nums = [3, 8]\nfor n in nums:\n    if n % 2 == 0:\n        return n\n"
    tests = "assert first_even([3, 8]) == 8"
    right = "def first_even(nums):\n    for n in nums:\n        if n % 2 == 0:\n            return n\n"
    wrong = right.replace("== 0", "== 1")  # parses, fails the tests: never offered
    asked = []
    found = search_repairs(broken, tests, samples=lambda: asked.append(1) or ["not python (", wrong, right],
                           limits=QUICK)
    assert asked == [1] and [(r.source, r.origin) for r in found.fixes] == [(right, "model sample")]
    found = search_repairs("x = 1\nif x = 1:\n    y = 2\n", "assert y == 2", limits=QUICK,
                           samples=lambda: asked.append(2) or [])
    assert found.best.origin == "search" and asked == [1]  # the search found one: the model is not asked


def test_tests_that_never_finish_are_timed_out_and_nothing_is_offered():
    started = time.monotonic()
    found = search_repairs("x = 1\nif x = 1:\n    y = 2\n", "while True:\n    pass\n", limits=QUICK)
    assert found.fixes == [] and found.timeouts >= QUICK.max_timeouts
    assert any("timed out" in note for note in found.notes)
    assert time.monotonic() - started < 30


def test_the_batch_sandbox_isolates_and_times_out_each_candidate():
    # the third patches a builtin the tests use: the fourth, in a fresh fork, does not see it
    codes = ["x = 1", "while True:\n    pass", "import builtins\nbuiltins.sorted = lambda v: [9]\nx = 1", "x = 1",
             "x = [0] * 10**10", "import os\nos._exit(0)"]
    verdicts = run_many(codes, "assert x == 1 and sorted([2, 1]) == [1, 2]", Limits(cpu_s=1, wall_s=1.0, memory_mb=256))
    assert [v.status for v in verdicts] == ["passed", "timeout", "failed", "passed", "memory", "crashed"]


def test_the_model_breaks_a_tie_of_edit_sizes(engine):
    # Two one-character fixes pass: closing the list, or closing it early so 3 becomes sum's start value.
    broken, tests = "total = sum([1, 2, 3)\n", "assert total == 6"
    alone = search_repairs(broken, tests)
    sources = {r.source for r in alone.fixes}
    assert {"total = sum([1, 2, 3])\n", "total = sum([1, 2], 3)\n"} <= sources
    ranked = search_repairs(broken, tests, scorer=engine_scorer(engine))
    assert ranked.ranked_by == "model and edit size"
    assert ranked.best.source == "total = sum([1, 2, 3])\n"
    scores = {r.source: r.score for r in ranked.fixes if r.score is not None}
    assert scores["total = sum([1, 2, 3])\n"] > scores["total = sum([1, 2], 3)\n"]


def test_score_is_the_log_likelihood_after_the_shared_prefix(engine):
    from jupyter_codegemma.backends.local.scoring import score_ids

    texts = ["```python\nx = [1, 2, 3]\n", "```python\nx = [1, 2], 3\n", "```python\nx = [1, 2, 3]]\nprint(x)\n"]
    ids = [engine.tokenize(t) for t in texts]
    shared = min(next(i for i, (a, b) in enumerate(zip(ids[0], x)) if a != b) for x in ids[1:])
    got = score_ids(engine._sampler, ids, engine.context_len)
    assert got == engine.score(texts)
    length = 32  # the cache length score_ids pads these texts to: the reference runs the same shapes
    for x, value in zip(ids, got):
        logits = engine.forward_logits(x + [0] * (length - len(x)))[: len(x)].astype(np.float64)
        top = logits.max(-1, keepdims=True)
        logprobs = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
        expected = sum(logprobs[t, x[t + 1]] for t in range(shared - 1, len(x) - 1))
        assert value == pytest.approx(expected, abs=2e-3)


def test_the_kernel_provider_shows_a_verified_fix_ranked_on_the_engine_worker(engine):
    from jupyter_codegemma.exercises.fix_provider import service_fix_provider
    from jupyter_codegemma.kernel.settings import CodeGemma
    from jupyter_codegemma.kernel.worker import Service

    service = Service(CodeGemma())
    service.engine, service._engine_key = engine, service._backend_spec()  # the session's model, not a second
    exercise = next(e for e in builtin_exercises() if e.id == "brackets-sum")
    try:
        fix = service_fix_provider(service)(exercise, exercise.broken, exercise.check())
    finally:
        service.shutdown()
    assert fix.shown and fix.answered and "ranked by model and edit size" in fix.reason
    assert "+total = sum([1, 2, 3])" in fix.diff and fix.message().startswith("A fix that passes")
    assert run_tests(fix.fix, exercise.tests).passed
