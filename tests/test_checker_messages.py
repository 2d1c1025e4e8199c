"""The checker's messages (issue 18): CPython's own wording, word for word, and beside it one plain sentence per
category (exercises/explanations.py) — for every category."""

from __future__ import annotations

import sys

import pytest

from jupyter_codegemma.exercises import CATEGORIES, check_code
from jupyter_codegemma.exercises.explanations import PLAIN

# category -> a beginner's snippet and the precise message CPython 3.10+ gives for it (None: whatever it says,
# checked against compile() below — the bare "invalid syntax" cases, where the plain sentence does the work).
MESSAGES = {
    "unbalanced_brackets": ("total = sum([1, 2, 3)\n",
                            "closing parenthesis ')' does not match opening parenthesis '['"),
    "unterminated_string": ("name = 'Ada\nprint(name)\n", "unterminated string literal (detected at line 1)"),
    "missing_colon": ("if temperature > 25\n    weather = 'hot'\n", "expected ':'"),
    "indentation": ("if x:\n        a = 1\n    b = 2\n", "unindent does not match any outer indentation level"),
    "missing_comma": ("numbers = [1, 2 3]\n", "invalid syntax. Perhaps you forgot a comma?"),
    "assign_for_compare": ("if x = 1:\n    pass\n", "invalid syntax. Maybe you meant '==' or ':=' instead of '='?"),
    "keyword": ("def f():\n    retrun 1\n", None),
    "python2_print": ("print 'hello'\n", "Missing parentheses in call to 'print'. Did you mean print(...)?"),
    "missing_operator": ("y = 2x\n", "invalid decimal literal"),
    "stray_character": ("price = 5 $\n", None),
    "other": ("x = 1 +\n", None),
}
MORE = [  # more of CPython's precise messages, each with its category
    ("x = (1, 2\ny = 3\n", "'(' was never closed", "unbalanced_brackets"),
    ("def f():\nreturn 1\n", "expected an indented block after function definition on line 1", "indentation"),
    ("x = \u201chi\u201d\n", "invalid character '\u201c' (U+201C)", "stray_character"),
    ("return 5\n", "'return' outside function", "keyword"),
]


def _cpython_message(source: str) -> str:
    try:
        compile(source, "<snippet>", "exec")
    except SyntaxError as err:
        return err.msg
    raise AssertionError(f"{source!r} compiles")


def test_every_category_has_a_plain_sentence():
    assert set(PLAIN) == set(CATEGORIES) == set(MESSAGES)
    for category, sentence in PLAIN.items():
        assert sentence.endswith(".") and 40 < len(sentence) < 220, (category, sentence)


@pytest.mark.skipif(sys.version_info < (3, 10), reason="the precise messages came with Python 3.10")
@pytest.mark.parametrize("category", list(MESSAGES))
def test_message_is_cpythons_plus_the_plain_sentence(category):
    source, precise = MESSAGES[category]
    result = check_code(source)
    assert result.category == category, result
    assert result.message == _cpython_message(source)  # word for word, never rephrased
    if precise is not None:
        assert result.message == precise
    assert result.plain == PLAIN[category]
    assert result.beginner_message == f"{result.message} — {PLAIN[category]}"


@pytest.mark.parametrize("source,message,category", MORE)
def test_more_precise_messages(source, message, category):
    result = check_code(source)
    assert (result.message, result.category, result.plain) == (message, category, PLAIN[category])


def test_a_mark_where_the_colon_belongs_is_a_missing_colon():
    # CPython says only "invalid syntax" when another mark stands where the colon belongs: the widget's
    # screenshot case. The category, and so the plain sentence, still names the colon.
    for source in ("temperature = 30\nif temperature > 25;\n    weather = 'hot'\n", "for i in range(3).\n    pass\n",
                   "else;\n    pass\n"):
        result = check_code(source)
        assert (result.message, result.category) == ("invalid syntax", "missing_colon"), (source, result)
        assert "colon" in result.plain
    assert check_code("x = 1\n").beginner_message is None


def test_the_friendly_traceback_comparison_in_the_guide_is_what_both_give_now():
    """docs/classroom.md's table was produced by running both (bench/explanations_vs_friendly.py): our columns
    must match the checker as it is, and friendly-traceback's too where the same version is installed."""
    import importlib.util
    from pathlib import Path

    friendly_traceback = pytest.importorskip("friendly_traceback")
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("explanations_vs_friendly",
                                                  root / "bench" / "explanations_vs_friendly.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    page = (root / "docs" / "classroom.md").read_text(encoding="utf-8")
    shown = page[page.index(bench.START):page.index(bench.END)]
    table, counts = bench.table()
    assert counts["snippets"] == 20 and len(counts["categories"]) == len(CATEGORIES) - 1  # all but "other"
    same_version = f"friendly-traceback {friendly_traceback.__version__} " in shown
    cut = (lambda row: row) if same_version else (lambda row: row.rsplit(" | ", 1)[0])
    assert [cut(row) for row in table.splitlines()] == [cut(row) for row in shown.splitlines() if row.startswith("|")]
