"""Runaway text stops at its first repeat (backends/repetition.py); code that merely looks alike does not."""

from __future__ import annotations

import pytest

from jupyter_codegemma.backends.repetition import RunawayScan, cut_runaway, stop_runaway, substantial

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


# Copies that are not next to their original (the runaway stop's second kind of block repeat).
IMPORTS = "import pandas as pd\nimport numpy as np\nimport matplotlib.pyplot as plt\n"
RECTANGLE = ("class Rectangle:\n    def __init__(self, width, height):\n        self.width = width\n"
             "        self.height = height\n\n    def area(self):\n        return self.width * self.height\n\n"
             "    def perimeter(self):\n        return 2 * (self.width + self.height)\n\n")


# Gemma 3 270M's explanation of a ZeroDivisionError (bench/generation.py, explain zero-division), raw.
ZERO_DIVISION = ("The error occurred when the following code was executed:\n\n```python\ndef mean(xs):\n"
                 "    return sum(xs) / len(xs)\n```\n\nThe error was raised because the following code was "
                 "executed:\n\n```python\ndef mean(xs):\n    return sum(xs) / len(xs)\n```\n\nThe error was raised")


def test_a_real_explanation_quoting_its_code_again_ends_before_the_copy():
    assert cut_runaway(ZERO_DIVISION) == (ZERO_DIVISION[:ZERO_DIVISION.index("executed:\n\n```python\ndef", 60)]
                                          + "executed:", True)


@pytest.mark.parametrize("text, kept", [
    # import lines again, other lines between
    (IMPORTS + "import seaborn as sns\n" + IMPORTS + "df = pd.read_csv('x.csv')\n", IMPORTS + "import seaborn as sns"),
    # a method written again in the same class
    (RECTANGLE + "    def area(self):\n        return self.width * self.height\n", RECTANGLE.rstrip("\n")),
    # a list item of an explanation said again (prose lines)
    ("The error is on line 2.\n- `numbers` has 3 items, so `numbers[5]` is past its end.\n- Indexes start at 0.\n"
     "\nTo fix it:\n- `numbers` has 3 items, so `numbers[5]` is past its end.\n- Indexes start at 0.\n",
     "The error is on line 2.\n- `numbers` has 3 items, so `numbers[5]` is past its end.\n- Indexes start at 0.\n"
     "\nTo fix it:"),
])
def test_a_block_copied_further_down_is_cut_before_the_copy(text, kept):
    assert cut_runaway(text) == (kept, True)


# Real code that writes lines twice and is no runaway: the standard library's `statistics.quantiles`
# (the same two lines end two branches), a matrix product's loops, two plots, two classes that both
# define __init__, a function with two checks.
LEGITIMATE = [
    "def quantiles(data, *, n=4, method='exclusive'):\n    data = sorted(data)\n    ld = len(data)\n"
    "    m = ld - 1\n    result = []\n    if method == 'inclusive':\n        for i in range(1, n):\n"
    "            j, delta = divmod(i * m, n)\n"
    "            interpolated = (data[j] * (n - delta) + data[j + 1] * delta) / n\n"
    "            result.append(interpolated)\n        return result\n    if method == 'exclusive':\n"
    "        m = ld + 1\n        for i in range(1, n):\n            j = i * m // n\n"
    "            j = 1 if j < 1 else ld-1 if j > ld-1 else j\n            delta = i*m - j*n\n"
    "            interpolated = (data[j - 1] * (n - delta) + data[j] * delta) / n\n"
    "            result.append(interpolated)\n        return result\n"
    "    raise ValueError(f'Unknown method: {method!r}')\n",
    "def matmul(a, b):\n    n, m, p = len(a), len(b), len(b[0])\n    c = [[0] * p for _ in range(n)]\n"
    "    for i in range(n):\n        for j in range(p):\n            for k in range(m):\n"
    "                c[i][j] += a[i][k] * b[k][j]\n    return c\n\n\ndef show(c):\n    for i in range(n):\n"
    "        for j in range(p):\n            print(c[i][j], end=' ')\n        print()\n",
    "plt.figure(figsize=(8, 5))\nplt.hist(df['price'], bins=30)\nplt.tight_layout()\nplt.show()\n\n"
    "plt.figure(figsize=(8, 5))\nplt.scatter(df['area'], df['price'])\nplt.tight_layout()\nplt.show()\n",
    "class Animal:\n    def __init__(self, name):\n        self.name = name\n\nclass Dog(Animal):\n"
    "    def __init__(self, name):\n        self.name = name\n\n    def speak(self):\n"
    "        return f'{self.name} says woof'\n",
    "def check(n):\n    if not isinstance(n, int):\n        raise ValueError('n must be a positive integer')\n"
    "    if n <= 0:\n        raise ValueError('n must be a positive integer')\n    return n\n",
    "try:\n    df = pd.read_csv(path)\nexcept FileNotFoundError:\n    print('no file')\n    df = None\n"
    "try:\n    model.fit(X, y)\nexcept ValueError:\n    print('no file')\n    df = None\n",
]


@pytest.mark.parametrize("functions", [False, True])
@pytest.mark.parametrize("text", LEGITIMATE)
def test_code_that_repeats_lines_in_other_places_is_kept(text, functions):
    assert cut_runaway(text, functions) == (text, False)


# Gemma 3 270M's `%%codegemma` answer to "check which of these URLs return HTTP 200" (bench/generation.py,
# http-status), raw: a second function with the first one's body, then on to the token limit.
DOWNLOAD = ("import requests\nimport time\n\ndef download_page(url):\n    print(\"Downloading page: \" + url)\n"
            "    response = requests.get(url)\n    if response.status_code == 200:\n"
            "        print(\"Page is successfully downloaded\")\n\n")
DOWNLOAD_AGAIN = ("# Now the status\ndef download_page_status(url):\n    print(\"Downloading page: \" + url)\n"
                  "    response = requests.get(url)\n    if response.status_code == 200:\n        print(\"Page")


def test_a_function_that_copies_the_one_before_ends_a_generated_answer_before_its_def():
    text = DOWNLOAD + DOWNLOAD_AGAIN
    assert cut_runaway(text, functions=True) == (DOWNLOAD.rstrip("\n"), True)
    assert cut_runaway(text) == (text, False)  # editor suggestions: sibling functions may share lines
    # Functions in two classes are no row of copies; the same function body nested deeper is no sibling.
    methods = ("class A:\n    def load(self, url):\n        response = requests.get(url)\n        self.data = response.json()\n"
               "\nclass B:\n    def load(self, url):\n        response = requests.get(url)\n        self.data = response.json()\n")
    assert cut_runaway(methods, functions=True) == (methods, False)


# Gemma 3 270M's explanation of a NameError (bench/generation.py, explain name-typo), raw: one sentence
# written in a code block under each heading.
NAME_TYPO = ("```python\nThe exception was raised because the value of the name 'total' was not defined.\n```\n\n"
             "The traceback:\n```python\nThe exception was raised because the value of the name 'total' was not "
             "defined.\n```\n\nThe values of the names involved:\n")


def test_a_sentence_written_again_as_a_line_is_cut_even_in_a_code_block():
    assert cut_runaway(NAME_TYPO) == (NAME_TYPO[:NAME_TYPO.index("\n```python\nThe exception", 10)], True)
    # A docstring's sentence (indented) may come back in the next function's docstring.
    docstrings = ('def a(x):\n    """Return the number of items in the list of values."""\n    return len(x)\n\n'
                  'def b(x):\n    """Return the number of items in the list of values."""\n    return len(x) + 1\n')
    assert cut_runaway(docstrings) == (docstrings, False)


def test_a_comment_and_its_line_written_again_are_a_copy():
    text = ("files = []\n# Create a list of all the csv files in the folder\nall_files = []\nfor name in names:\n"
            "    print(name)\n\n# Create a list of all the csv files in the folder\nall_files = []\n")
    assert cut_runaway(text) == (text[:text.index("\n\n# Create")], True)


@pytest.mark.parametrize("line, says", [
    ("import numpy as np", True), ("    def area(self):", True), ("        return self.width * self.height", True),
    ("plt.show()", False), ("plt.tight_layout()", False), ("else:", False), ("    for j in range(len(row)):", False),
    ("return result", False), ("raise", False), ("})", False), ("    raise TypeError(", False),
    ("'a': [1, 2, 3],", False), ("# Plot the data", False), ("# Plot the price of each house in the data", True), ("```python", False), ("-" * 40, False),
    ("df = df.dropna(subset=['age'])", True),
])
def test_what_counts_as_a_line_that_says_something(line, says):
    assert substantial(line) == says


def test_a_stream_fed_in_pieces_stops_where_the_whole_text_does():
    texts = [HIST + "\n" + HIST + "\n" + HIST, IMPORTS + "x = 1\n" + IMPORTS, RECTANGLE * 2, *LEGITIMATE,
             "A missing colon ends the line. Python needs it there. A missing colon ends the line. Python",
             "values = [" + "1, " * 30, "print('" + "=" * 130 + "')\n"]
    for text in texts:
        whole = cut_runaway(text)
        for size in (1, 3, 17):
            scan = RunawayScan()
            pieces = [scan.feed(text[:end]) for end in range(size, len(text) + size, size)]
            assert pieces[-1] == whole, (size, text)
            first = next(i for i, (_, repeated) in enumerate(pieces + [(None, True)]) if repeated)
            assert all(piece == whole for piece in pieces[first:])  # once cut, it stays cut the same way


def test_a_text_that_changed_is_judged_again():
    scan = RunawayScan()
    assert scan.feed("x = 1\nprint(x)\nprint(x)\nprint(x)\n") == ("x = 1\nprint(x)", True)
    assert scan.feed("x = 1\n") == ("x = 1\n", False)  # another text (not the last one grown)


def test_each_piece_costs_time_for_the_new_text_only():
    """The scan reads each complete line once: a long answer fed a character at a time compares a
    line with the lines before it a bounded number of times, not once per piece."""
    lines = [f"value_{i} = compute(data, step={i})" for i in range(400)]
    text = "\n".join(lines) + "\n"
    scan = RunawayScan()
    calls = 0
    add = scan._add

    def counted(*args):
        nonlocal calls
        calls += 1
        return add(*args)

    scan._add = counted
    for end in range(1, len(text) + 1):
        scan.feed(text[:end])
    assert calls == len(lines) and scan.feed(text) == (text, False)
