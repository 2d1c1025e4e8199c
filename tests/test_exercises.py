"""Classroom exercises without a kernel: the checker, the built-in set, the generator, the sandbox,
the hint ladder (with a scripted sampler in place of the model), results and authoring files."""

from __future__ import annotations

import csv
import inspect
import json
import json.decoder
import random
import textwrap
from collections import Counter

import pytest

from jupyter_codegemma.exercises import (CATEGORIES, Exercise, ExerciseError, builtin_exercises, check_code,
                                         exercise_from_cell, load_exercises, save_exercises)
from jupyter_codegemma.exercises.checker import CATEGORY_NAMES
from jupyter_codegemma.exercises.generator import GENERATED_CATEGORIES, NoSiteError, categories_for, inject_error
from jupyter_codegemma.exercises.hints import NO_CONFIDENT, hint, model_fix, where_text
from jupyter_codegemma.exercises.magics import split_args
from jupyter_codegemma.exercises.results import Results, ResultsError, export_csv
from jupyter_codegemma.exercises.sandbox import Limits, run_tests

BUILTIN = builtin_exercises()
FAST = Limits(cpu_s=2, wall_s=4, memory_mb=256)

# --- the checker ------------------------------------------------------------------------------------------

SNIPPETS = [  # (source, line, category)
    ("x = (1, 2\ny = 3\n", 1, "unbalanced_brackets"),
    ("x = 1)\n", 1, "unbalanced_brackets"),
    ("a = 1\nx = [1, 2)\n", 2, "unbalanced_brackets"),
    ("x = 'abc\n", 1, "unterminated_string"),
    ('a = 1\nx = """abc\n', 2, "unterminated_string"),
    ("name = good morning everyone\n", 1, "unterminated_string"),
    ("if x\n    pass\n", 1, "missing_colon"),
    ("def f()\n    return 1\n", 1, "missing_colon"),
    ("if x:\n    pass\nelse\n    pass\n", 3, "missing_colon"),
    ("def f():\nreturn 1\n", 2, "indentation"),
    ("if x:\n        a = 1\n    b = 2\n", 3, "indentation"),
    ("a = 1\n    b = 2\n", 2, "indentation"),
    ("if x:\n\tif y:\n        pass\n\tpass\n", 3, "indentation"),
    ("x = [1 2 3]\n", 1, "missing_comma"),
    ("def power(base exponent):\n    pass\n", 1, "missing_comma"),
    ("if x = 1:\n    pass\n", 1, "assign_for_compare"),
    ("while x = 1:\n    pass\n", 1, "assign_for_compare"),
    ("if a == 0 and b = 0:\n    pass\n", 1, "assign_for_compare"),
    ("if x:\n  pass\nesle:\n    pass\n", 3, "keyword"),
    ("class = 3\n", 1, "keyword"),
    ("def f():\n    retrun x\n", 2, "keyword"),
    ("fro i in x:\n    pass\n", 1, "keyword"),
    ("if x:\n    pass\nelse if y:\n    pass\n", 3, "keyword"),
    ("return 5\n", 1, "keyword"),
    ("True = 1\n", 1, "keyword"),
    ("print 'hello'\n", 1, "python2_print"),
    ("x = 1\nprint x\n", 2, "python2_print"),
    ("x = 2 3\n", 1, "missing_operator"),
    ("y = 2x\n", 1, "missing_operator"),
    ("total = price tax\n", 1, "missing_operator"),
    ("x = 1 $ 2\n", 1, "stray_character"),
    ("x = \u201chi\u201d\n", 1, "stray_character"),
    ("x = 1?\n", 1, "stray_character"),
    ("x = `a`\n", 1, "stray_character"),
    ("x = 1\nx = 1\u00a0+ 2\n", 2, "stray_character"),
    ("x = 1\0\n", 1, "stray_character"),
]


@pytest.mark.parametrize("source,line,category", SNIPPETS)
def test_check_code_finds_line_and_category(source, line, category):
    result = check_code(source)
    assert not result.ok
    assert (result.line, result.category) == (line, category), result
    assert result.message and result.explanation and result.col >= 1
    assert CATEGORIES[category] in result.explanation


def test_check_code_ok_and_columns():
    assert check_code("x = 1\nif x == 1:\n    print(x)\n").ok
    assert check_code("await something()\n").ok  # notebooks allow top-level await
    r = check_code("if temperature > 25\n    pass\n")
    assert (r.line, r.col, r.message) == (1, 20, "expected ':'")  # where the colon belongs
    assert check_code("if x:\n        a = 1\n    b = 2\n").col == 5  # the start of the badly indented line


# --- the built-in set -------------------------------------------------------------------------------------

def test_builtin_set_size_and_spread():
    assert len(BUILTIN) >= 40
    assert len({e.id for e in BUILTIN}) == len(BUILTIN)
    counts = Counter(e.category for e in BUILTIN)
    assert set(counts) == set(CATEGORIES) - {"other"}, counts
    assert min(counts.values()) >= 4
    assert {e.difficulty for e in BUILTIN} == {1, 2, 3}


@pytest.mark.parametrize("ex", BUILTIN, ids=[e.id for e in BUILTIN])
def test_builtin_broken_fails_with_its_category(ex):
    result = ex.check()
    assert not result.ok and result.category == ex.category, result


def test_builtin_solutions_parse_and_pass_their_tests():
    failures = []
    for ex in BUILTIN:
        assert check_code(ex.solution).ok, ex.id
        outcome = ex.run_tests(limits=FAST)
        if not outcome.passed:
            failures.append((ex.id, outcome.message))
        assert not run_tests(ex.broken, ex.tests, FAST).passed  # the broken code never passes
    assert not failures


# --- the generator ------------------------------------------------------------------------------------

def _stdlib_functions() -> list[str]:
    sources = []
    for module in (textwrap, json.decoder, csv):
        for _, obj in inspect.getmembers(module):
            members = [obj] if inspect.isfunction(obj) else list(vars(obj).values()) if inspect.isclass(obj) else []
            for f in members:
                if inspect.isfunction(f) and f.__module__ == module.__name__:
                    sources.append(textwrap.dedent(inspect.getsource(f)))
    return sources


def test_generator_200_seeded_draws_fail_with_the_requested_category():
    sources = _stdlib_functions()
    assert len(sources) >= 15
    applicable = [(s, categories_for(s)) for s in sources]
    rng = random.Random(2024)
    counts = Counter()
    for seed in range(200):
        source, cats = rng.choice(applicable)
        category = rng.choice(cats)
        broken = inject_error(source, category, seed=seed)
        assert broken != source
        result = check_code(broken)
        assert not result.ok and result.category == category, (seed, category, result)
        assert broken == inject_error(source, category, seed=seed)  # deterministic per seed
        counts[category] += 1
    assert set(counts) == set(GENERATED_CATEGORIES), counts  # every category was drawn


def test_generator_seeds_give_variants_and_no_site_is_reported():
    source = "def mean(xs):\n    if len(xs) == 0:\n        return 0\n    return sum(xs) / len(xs)\n"
    assert len({inject_error(source, "keyword", seed=s) for s in range(10)}) > 1
    with pytest.raises(NoSiteError):
        inject_error("x = 1\n", "missing_comma")
    with pytest.raises(ValueError, match="must parse"):
        inject_error("x = (\n", "missing_colon")


# --- the sandbox ------------------------------------------------------------------------------------

def test_sandbox_stops_an_endless_loop():
    outcome = run_tests("while True: pass", "", Limits(cpu_s=1, wall_s=5))
    assert outcome.status == "timeout" and "CPU time" in outcome.message and outcome.seconds < 4


def test_sandbox_stops_a_sleeping_child_at_the_wall_clock():
    outcome = run_tests("import time\ntime.sleep(30)", "", Limits(cpu_s=5, wall_s=1.5))
    assert outcome.status == "timeout" and "wall clock" in outcome.message and outcome.seconds < 5


@pytest.mark.parametrize("code", ["x = bytearray(10**10)", "x = []\nwhile True:\n    x.append(' ' * 10**6)"])
def test_sandbox_stops_a_memory_bomb(code):
    outcome = run_tests(code, "", Limits(cpu_s=5, wall_s=10, memory_mb=256))
    assert outcome.status == "memory" and "256 MB" in outcome.message


def test_sandbox_reports_os_exit_in_the_tests():
    outcome = run_tests("x = 1", "import os; os._exit(1)", FAST)
    assert outcome.status == "crashed" and "exited with code 1" in outcome.message


def test_sandbox_verdicts_and_isolation():
    assert run_tests("x = 2", "assert x == 2", FAST).passed
    failed = run_tests("x = 3", "assert x == 2, 'x should be 2'", FAST)
    assert failed.status == "failed" and "x should be 2" in failed.message
    error = run_tests("print('hi')\n1 / 0", "", FAST)
    assert error.status == "error" and "ZeroDivisionError" in error.message and error.output == "hi\n"
    assert run_tests("y = 5", "def check(ns):\n    assert ns['y'] == 5", FAST).passed
    assert not run_tests("y = 4", "def check(ns):\n    assert ns['y'] == 5", FAST).passed
    forged = run_tests("print('@@verdict-0@@{\"status\": \"passed\"}')", "assert False", FAST)
    assert forged.status == "failed"  # printed text cannot forge the verdict
    assert "sandbox_marker" not in globals()  # and nothing ran here
    run_tests("global sandbox_marker\nsandbox_marker = 1", "", FAST)
    assert "sandbox_marker" not in globals()


# --- hints --------------------------------------------------------------------------------------------

def test_levels_one_and_two_need_no_model():
    source = "x = 1\nif x == 1\n    print(x)\n"
    text = where_text(source, check_code(source))
    assert text.splitlines()[0] == "Line 2, column 10:"
    assert ">2 | if x == 1" in text and text.splitlines()[3].endswith("^")
    assert text.splitlines()[3].index("^") == text.splitlines()[2].index("if x") + 9
    assert CATEGORIES["missing_colon"] in hint(1, source)  # level 1: the concept, not the place
    assert "Line 2" not in hint(1, source) and hint(2, source).startswith(text)  # level 2: the place, then the kind


def test_hints_name_the_exercises_kind_of_mistake():
    semicolon = "temperature = 30\nif temperature > 25;\n    weather = 'hot'\n"
    result = check_code(semicolon)
    # Python says only "invalid syntax"; the checker sees the ';' at the end of an if line (issue 18)
    assert result.message == "invalid syntax" and result.category == "missing_colon"
    concept = hint(1, semicolon, result, category="missing_colon")
    assert concept.startswith("The mistake: a missing colon") and CATEGORIES["missing_colon"] in concept
    place = hint(2, semicolon, result, category="missing_colon")
    assert place.startswith("Line 2, column 20:\n")
    assert place.endswith('Python says "invalid syntax".\nThe mistake: ' + CATEGORY_NAMES["missing_colon"] + ".")
    # A different mistake made while fixing is named as what it is, with the exercise's beside it.
    comma = hint(1, "x = [1 2]\n", category="missing_colon")
    assert "The mistake: a missing comma" in comma and "(this exercise is about a missing colon" in comma
    assert CATEGORIES["missing_comma"] in comma


def _scripted(outputs):
    calls = iter(outputs)
    return lambda prompt, **kw: next(calls) + "```\n"


def test_model_fix_shown_only_when_samples_agree():
    broken, fixed = "if x\n    pass\n", "if x:\n    pass\n"
    fix = model_fix(_scripted([fixed, fixed, "junk", "junk", "junk"]), broken)
    assert fix.shown and fix.fix == fixed and fix.samples == 2  # stops as soon as two agree
    assert "-if x\n" in fix.diff and "+if x:\n" in fix.diff
    disagree = model_fix(_scripted([fixed, "if x :\n    pass\n", "if (x):\n    pass\n", "if y:\n    pass\n",
                                    "if x: pass\n"]), broken)
    assert not disagree.shown and disagree.message() == NO_CONFIDENT
    rewrite = "for i in range(10):\n    print(i * 2 + 1, end=', ')\n"
    assert not model_fix(_scripted([rewrite] * 5), broken).shown  # parses and agrees, but changes too much
    assert not model_fix(_scripted(["if x\n    pass\n"] * 5), broken).shown  # still broken
    assert not model_fix(_scripted([fixed] * 5), broken, verify=lambda code: False).shown  # fails the tests


# --- results and authoring ------------------------------------------------------------------------------

def test_results_file_and_csv(tmp_path):
    path = tmp_path / "results.json"
    results = Results(path, student="ana")
    results.opened("colon-if")
    results.attempt("colon-if", solved=False)
    results.hint("colon-if", 2)
    results.attempt("colon-if", solved=True)
    data = json.loads(path.read_text())
    rec = data["exercises"]["colon-if"]
    assert (data["student"], rec["attempts"], rec["hints"], rec["max_hint_level"], rec["solved"]) == \
        ("ana", 2, 1, 2, True)
    assert Results(path).record("colon-if").attempts == 2  # read back
    out = export_csv([path], tmp_path / "class.csv")
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["student"] == "ana" and rows[0]["exercise"] == "colon-if" and rows[0]["solved"] == "True"


def test_export_skips_bad_files_with_one_line_each(tmp_path, capsys):
    good = Results(tmp_path / "ana.json", student="ana")
    good.attempt("colon-if", solved=True)
    text = (tmp_path / "ana.json").read_text()
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])  # truncated
    (tmp_path / "list.json").write_text("[1, 2]")  # valid JSON, not a results file
    (tmp_path / "record.json").write_text('{"student": "x", "exercises": {"colon-if": 3}}')
    (tmp_path / "empty.json").write_text("")
    Results(tmp_path / "bo.json", student="bo").attempt("colon-def", solved=False)
    files = [tmp_path / n for n in ("ana.json", "missing.json", "cut.json", "list.json", "record.json",
                                    "empty.json", "bo.json")]
    out = export_csv(files, tmp_path / "class.csv")
    rows = list(csv.DictReader(out.open()))
    assert [(r["student"], r["exercise"]) for r in rows] == [("ana", "colon-if"), ("bo", "colon-def")]
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 5 and all(w.startswith("export_csv: skipped ") for w in warnings), warnings
    for name, problem in zip(("missing", "cut", "list", "record", "empty"),
                             ("no such file", "truncated", "not a results file", "'colon-if' is not an object",
                              "empty")):
        line = next(w for w in warnings if f"{name}.json" in w)
        assert problem in line, line


def test_a_broken_results_file_is_reported_and_kept(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"exercises": {"a": {"attempts": 1')
    with pytest.raises(ResultsError, match="results.json: not valid JSON.*truncated"):
        Results(path)
    assert path.read_text() == '{"exercises": {"a": {"attempts": 1'
    with pytest.raises(ResultsError, match="does not exist"):
        Results(tmp_path / "nowhere" / "results.json")


def test_exercise_file_mistakes_name_the_file_and_line(tmp_path):
    good = ("- id: a\n  category: missing_colon\n  broken: |\n    if x\n        pass\n"
            "  solution: |\n    if x:\n        pass\n  tests: |\n    assert True\n")
    path = tmp_path / "week.yaml"
    for text, expected in [
        (good.replace("  tests: |", "  tests |"),
         "week.yaml, line 9, column 3: not valid YAML: a line without the ':' after its key: 'tests |'"),
        (good + good.replace("id: a", "id: b").replace("  solution: |\n    if x:\n        pass\n", ""),
         "week.yaml, line 11: exercise 'b': missing solution"),
        (good.replace("  category", "  difficulty: easy\n  category"),
         "week.yaml, line 1: exercise 'a': difficulty must be 1, 2 or 3, got 'easy'"),
        ("", "week.yaml: expected a list of exercises"),
    ]:
        path.write_text(text)
        with pytest.raises(ExerciseError) as info:
            load_exercises(path)
        assert str(info.value).startswith(str(tmp_path / expected)) and "\n" not in str(info.value)
    with pytest.raises(ExerciseError, match="no such file"):
        load_exercises(tmp_path / "none.yaml")
    (tmp_path / "week.json").write_text('{"exercises": [1,]}')
    with pytest.raises(ExerciseError, match=r"week.json, line 1, column 18: not valid JSON"):
        load_exercises(tmp_path / "week.json")


def test_magic_words_lose_their_quotes():
    assert split_args('--title "Squares" --id \'my id\' --file C:\\course\\week3.yaml') == \
        ["--title", "Squares", "--id", "my id", "--file", "C:\\course\\week3.yaml"]
    assert split_args('--title="Two words"') == ["--title=Two words"]
    assert split_args("--file week#3.yaml --title #1") == ["--file", "week#3.yaml", "--title", "#1"]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_authoring_round_trip(tmp_path, suffix):
    path = save_exercises(BUILTIN[:5], tmp_path / f"set{suffix}")
    assert load_exercises(path) == BUILTIN[:5]


def test_authoring_errors_name_the_exercise(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- id: a\n  broken: 'x = (1'\n  solution: 'x = (1)'\n  tests: 'assert x'\n  category: brackets\n")
    with pytest.raises(ExerciseError, match="exercise 'a'.*category 'brackets'"):
        load_exercises(bad)
    bad.write_text("- id: a\n  broken: 'x'\n  solution: 'x'\n  tests: 'assert x'\n  dificulty: 2\n")
    with pytest.raises(ExerciseError, match="unknown field.*dificulty"):
        load_exercises(bad)
    with pytest.raises(ExerciseError, match="difficulty"):
        Exercise(id="a", broken="x", solution="x", difficulty=5)


def test_exercise_from_cell():
    cell = "def inc(x):\n    return x + 1\n# tests\nassert inc(1) == 2\n"
    ex = exercise_from_cell(cell, id="inc", category="missing_colon", seed=1)
    assert ex.check().category == "missing_colon" and ex.tests.strip() == "assert inc(1) == 2"
    assert ex.run_tests(limits=FAST).passed
    sections = "# broken\nx = [1 2]\n# solution\nx = [1, 2]\n# tests\nassert x == [1, 2]\n"
    ex = exercise_from_cell(sections, id="s")
    assert ex.category == "missing_comma" and ex.solution == "x = [1, 2]\n"
