"""The check every suggestion passes before it is shown (backends/candidates.py), and the names the
line still to write must bind (backends/line_to_write.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from jupyter_codegemma.backends.candidates import check, leaves_open, starts_with_name
from jupyter_codegemma.backends.line_to_write import NONE, LineToWrite, binding, names_to_bind, read

FUNCTION = "def total(values):\n    result = 0\n    for v in values:\n"


@pytest.mark.parametrize("line, ok", [
    ("        result += v", True),  # the body the `for` opens
    ("    result += v", False),  # not deeper than the `for`: no body
    ("      result += v", True),  # deeper is deeper, however much
])
def test_a_line_after_a_colon_must_be_indented_deeper(line, ok):
    assert check(FUNCTION, line, "").ok is ok


@pytest.mark.parametrize("line, ok", [
    ("    return result", True),  # back to the function's level
    ("return result", True),  # back to the top level
    ("  return result", False),  # a level no open block has
    ("            return result", False),  # deeper, but nothing opened a block
])
def test_a_dedent_must_land_on_an_open_level(line, ok):
    prefix = FUNCTION + "        result += v\n"
    verdict = check(prefix, line, "")
    assert verdict.ok is ok
    if not ok:
        assert verdict.offset == 0 and "indented" in verdict.reason


def test_a_suggestion_that_breaks_a_parseable_cell_is_refused_and_says_where():
    prefix = "def f(x):\n    y = x + 1\n    "
    suffix = "\n    return y\n"
    assert check(prefix, "y = y * 2", suffix).ok
    verdict = check(prefix, "y = y * * 2", suffix)
    assert not verdict.ok and "no longer parse" in verdict.reason
    assert 0 < verdict.offset < len("y = y * * 2")
    assert not check(prefix, "y = abs(y", suffix).ok  # a bracket never closed, with code after it


def test_unfinished_code_that_was_unparseable_stays_allowed():
    # The user is in the middle of a call: the cell did not parse before and does not with the suggestion.
    assert check("values = sorted(items, key=", "lambda item: item[1]", "").ok
    assert check("values = sorted(items, key=lambda item: ", "item[1],", "").ok
    # A line that opens a block at the end of the cell: its body comes next.
    assert check("import os\n", "for name in os.listdir('.'):", "").ok
    # An error elsewhere in the cell (below the cursor) stays; the suggestion adds none.
    assert check("x = 1\ny = ", "x + 1", "\nprint(y))\n").ok


def test_a_line_that_leaves_the_code_open_is_told_from_one_that_stands():
    body = 'def length(text):\n    """The length of text."""\n'
    assert leaves_open(body, "    if not text:", "\n")  # a block with nothing in it yet
    assert leaves_open(body, "    return len(", "\n")  # a bracket nothing closes
    assert not leaves_open(body, "    return len(text)", "\n")
    # A body below the cursor fills the block the line opens; code that is broken otherwise is not open.
    assert not leaves_open(body, "    if not text:", "\n        return 0\n")
    assert not leaves_open(body, "    return )", "\n")


def test_a_suggestion_may_not_add_an_error_to_a_cell_that_had_one():
    suffix = "\nprint(y))\n"  # already broken below the cursor
    verdict = check("x = 1\ny = ", "x + + * 1", suffix)
    assert not verdict.ok and "adds an error" in verdict.reason


def test_a_suggestion_must_mend_what_the_rest_of_its_line_lacks():
    """Code after the cursor on its line that fails for want of what belongs at the cursor (a bracket it
    closes, an expression it goes on from) must parse with the suggestion: the check does not let the
    same error stand, nor one moved further along that line."""
    prefix = "def unique(l):\n    return "
    verdict = check(prefix, "sorted(l)", "set(l)))\n")
    assert not verdict.ok and "on its line still fails" in verdict.reason and "unmatched ')'" in verdict.reason
    assert check(prefix, "sorted(list(", "set(l)))\n").ok
    prefix = "def rescale(numbers, low, high):\n    return ["
    assert not check(prefix, "low, high]", " for x in numbers]\n").ok  # `[low, high] for x in numbers]`
    assert check(prefix, "(x - low) / (high - low)", " for x in numbers]\n").ok
    # An error further down, on another line, is the user's: it does not count against the suggestion.
    assert check("x = (", "1 + 2", ")\nprint(y))\n").ok


def test_made_up_names_are_refused_where_the_namespace_is_known():
    prefix = "import math\n\ndef area(radius):\n    "
    assert check(prefix, "return math.pi * radius ** 2", "", namespace=()).ok
    verdict = check(prefix, "return pi * radius ** 2", "", namespace=())
    assert not verdict.ok and "'pi'" in verdict.reason and verdict.offset == len("return ")
    assert check(prefix, "return pi * radius ** 2", "", namespace={"pi"}).ok  # the kernel has one
    assert check(prefix, "return pi * radius ** 2", "").ok  # namespace unknown: names are not checked
    assert check("from math import *\n", "x = pi", "", namespace=()).ok  # a star import binds what we cannot see


def test_ipython_syntax_is_not_a_parse_error():
    assert check("%matplotlib inline\nimport numpy as np\n", "x = np.zeros(3)", "\n!ls\n").ok
    assert check("%%bash\necho ", "hello )(", "").ok  # a cell magic's body is not Python


def test_starts_with_name():
    assert starts_with_name("shape[0]", ["dtype", "shape"])
    assert starts_with_name("shape", ["shape"])
    assert not starts_with_name("shapes", ["shape"])
    assert not starts_with_name("size", ["shape"])
    assert starts_with_name("name\"]", ['name"'])


def test_a_continuation_line_in_a_broken_cell_is_not_read_alone():
    prefix = "x = compute(1,\n            "
    assert check(prefix, "2)", "\n\ny = 1 +\n").ok


def test_a_line_must_open_the_block_the_next_line_is_indented_for():
    prefix = "def count(xs):\n    n = 0\n"
    suffix = "\n        n += 1\n    return n\n"
    assert check(prefix, "    for x in xs:", suffix).ok
    verdict = check(prefix, "    # count them", suffix)
    assert not verdict.ok and verdict.offset == 4


def test_a_name_the_code_below_needs_must_not_be_named_otherwise():
    prefix = "def shout(words):\n"
    suffix = "\n        print(w.upper())\n"
    assert check(prefix, "    for w in words:", suffix, namespace=()).ok
    verdict = check(prefix, "    for word in words:", suffix, namespace=())
    assert not verdict.ok and "'word'" in verdict.reason and verdict.offset == 8


def test_a_comment_where_the_code_below_needs_a_name_bound_is_refused():
    prefix, suffix = "def total(xs):\n", "\n    for x in xs:\n        s += x\n    return s\n"
    assert check(prefix, "    s = 0", suffix, namespace=()).ok
    verdict = check(prefix, "    # add them up", suffix, namespace=())
    assert not verdict.ok and "'s'" in verdict.reason and verdict.offset == 4
    assert check(prefix, "    # add them up", suffix).ok  # namespace unknown: the kernel may hold an `s`


@pytest.mark.parametrize("suffix, needed", [
    # Read before anything binds it: an assignment binds once its value is computed.
    ("\n    for c in s:\n        depth = max(depth, 1)\n    return depth\n", ("depth",)),
    ("\n    total += 1\n    return total, missing\n", ("total", "missing")),
    # Bound before it is read: by a loop, a comprehension, a parameter, an import, a def; or a builtin.
    ("\n    for c in s:\n        print(c)\n    return [v for v in s], len(s)\n", ()),
    ("\n    import os\n    f = lambda q: os.sep + q\n    def g():\n        return g\n    return f(s)\n", ()),
    ("\n    return sorted(s)\n", ()),
    # A name a comprehension or a nested function binds is not bound around it; a parameter is its own.
    ("\n    evens = [i for i in s if i % 2]\n    return evens, i\n", ("i",)),
    ("\n    def g(n):\n        for j in range(n):\n            print(j)\n    return g(j)\n", ("j",)),
    ("\n    class C:\n        k = 1\n        def m(self):\n            return k\n    return C\n", ("k",)),
])
def test_the_names_the_code_after_the_cursor_reads_before_anything_binds_them(suffix, needed):
    prefix = "def f(s):\n"
    assert names_to_bind(prefix, suffix, ()) == needed
    assert names_to_bind(prefix, suffix, None) == ()  # namespace unknown: the kernel may hold them
    for name in needed:
        assert binding(prefix, f"    {name} = 0", suffix, needed, ()) != NONE
    if needed:
        assert binding(prefix, "    unrelated = 0", suffix, needed, ()) == NONE


@pytest.mark.parametrize("prefix, suffix, needed, opener", [
    # The line to write opens the block below it: without it the body has no header.
    ("def f(n):\n    \"\"\"Doc.\"\"\"\n", "\n        if n % i == 0:\n            return i\n", ("i",), "    "),
    ("def f(a, b):\n", "\n        if i == j:\n            return 0\n\n    return xor(a, b)\n", ("i", "j", "xor"), "    "),
    # The line to write is a block's body: without it the `for` above has none.
    ("def f(xs):\n    for x in xs:\n", "\n    return total\n", ("total",), None),
    # It parses without the line: a statement in the block (this one could also open a deeper block).
    ("def f(xs):\n    for x in xs:\n", "\n        print(y)\n", ("y",), None),
])
def test_names_to_bind_are_found_where_the_code_parses_only_with_the_line_to_write(prefix, suffix, needed, opener):
    assert read(prefix, suffix, ()) == LineToWrite(needed, opener)
    assert names_to_bind(prefix + "    x = 1", suffix, ()) == ()  # typed on the line: no placeholder, no parse


def test_a_name_the_namespace_or_the_cells_around_hold_is_not_needed():
    prefix, suffix = "def f(s):\n", "\n    return s + offset\n"
    assert names_to_bind(prefix, suffix, ()) == ("offset",)
    assert names_to_bind(prefix, suffix, ("offset",)) == ()
    assert names_to_bind("offset = 3\n\n" + prefix, suffix, ()) == ()


def test_an_error_in_a_cell_far_above_does_not_hide_the_suggestions_own():
    prefix = "print('never closed'\n\nimport os\n\ndef exists(path):\n"
    suffix = "\n\nexists('.')\n"
    assert check(prefix, "    return os.path.exists(path)", suffix, namespace=()).ok
    assert not check(prefix, "    return os.path.exists(path", suffix, namespace=()).ok
    assert not check(prefix, "    return os.path.exists(folder)", suffix, namespace=()).ok


def test_checking_text_that_python_warns_about_writes_no_warning():
    """Model text like `1if` or `"\\d"` makes the compiler warn; the check compiles text nobody runs, so
    nothing reaches stderr (where a kernel would show it), and other code's warnings still do."""
    code = textwrap.dedent(r'''
        import warnings
        from jupyter_codegemma.backends.candidates import check
        for suggestion in ('1if x else 2', r'"\d+"', 'x is 1'):
            check("y = ", suggestion, "\nprint(y)\n")
        compile("z = 1if 1 else 2", "<user>", "exec")
    ''')
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "Warning:" in line]
    assert warned == ["<user>:1: SyntaxWarning: invalid decimal literal"], done.stderr
