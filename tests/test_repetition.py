"""Runaway text stops at its first repeat (backends/repetition.py); code that merely looks alike does not."""

from __future__ import annotations

import pytest

from jupyter_codegemma.backends.repetition import cut_runaway, stop_runaway

HIST = "plt.hist(df['price'], bins=20)\nplt.xlabel('price')\nplt.ylabel('count')\nplt.title('Prices')\nplt.show()\n"


@pytest.mark.parametrize("text, kept", [
    (HIST + "\n" + HIST + "\n" + HIST + "\nplt", HIST.rstrip("\n")),  # the same block again, blank lines aside
    ("x = 1\nprint(x)\nprint(x)\nprint(x)\n", "x = 1\nprint(x)"),  # one line three times
    ("def f():\n    return 0000000000000000000000000000000", "def f():\n    return 0"),
    ("values = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1", "values = [1"),
    ("A missing colon ends the line. Python needs it there. A missing colon ends the line. Python",
     "A missing colon ends the line. Python needs it there."),
])
def test_runaways_are_cut_before_the_first_repeat(text, kept):
    assert cut_runaway(text) == (kept, True)


@pytest.mark.parametrize("text", [
    "for i in range(3):\n    print(i)\n    print(i * 2)\n",
    "if a:\n    pass\nelse:\n    pass\n",  # short lines repeat in good code
    "data = {\n    'a': 1,\n}\nmore = {\n    'b': 2,\n}\n",
    "print('=' * 80)\n" + "#" * 80 + "\n",  # rulers
    "mask = 0xFFFFFFFF\nzeros = [0, 0, 0, 0, 0, 0, 0, 0]\nn = 1_000_000_000\n",
    "x = 1\nx = 1\n",  # twice is not a runaway
    "It reads the file. It counts the words. It prints them.",
])
def test_code_and_prose_that_do_not_repeat_are_kept(text):
    assert cut_runaway(text) == (text, False)


def test_a_wrapped_shape_is_complete_at_the_repeat():
    shape = stop_runaway(lambda text, final: (text.upper(), final))
    assert shape("a = 1\nb += 100\nb += 100\nb += 100\n", False) == ("A = 1\nB += 100", True)
    assert shape("a = 1\nb += 10\n", False) == ("A = 1\nB += 10\n", False)
