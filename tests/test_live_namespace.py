"""The kernel-context facts (kernel/live_namespace.py, kernel/safe_readers.py) on real objects: what
they say at each kind of cursor, which names they allow, and that reading them runs no user code."""

from __future__ import annotations

import collections
import csv
import dataclasses
import enum
import io
import threading
import types

import numpy as np
import pandas as pd
import pytest

from jupyter_codegemma.kernel import live_namespace
from jupyter_codegemma.kernel.live_namespace import HEADER, read_facts, with_facts


@pytest.fixture(autouse=True)
def roomy_time_budget(monkeypatch):
    """What is read is checked here, not how fast (bench/kernel_context.py): on a busy test machine the
    8 ms budget would cut facts short at random."""
    monkeypatch.setattr(live_namespace, "BUDGET_S", 5.0)


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0

    def norm(self) -> float:
        return (self.x ** 2 + self.y ** 2) ** 0.5


Pair = collections.namedtuple("Pair", "left right")


class Color(enum.Enum):
    RED = 1
    GREEN = 2


def fit(data, target=None, *, epochs: int = 10, learning_rate: float = 0.01, password="hunter2"):
    return data


@pytest.fixture
def namespace():
    rows = list(csv.DictReader(io.StringIO("name,age,city\nAda,36,London\nAlan,41,Wilmslow\n")))
    return {
        "rows": rows,
        "df": pd.DataFrame({"price": [1.5, 2.0], "quantity": [3, 4], "product": ["tea", "jam"]}),
        "readings": np.zeros(4, dtype=[("time", "f8"), ("volts", "f4")]),
        "config": {"batch_size": 32, "optimizer": "adam"},
        "Point": Point, "origin": Point(0.0, 0.0), "pair": Pair(1, 2), "Color": Color, "fit": fit,
        "settings": types.SimpleNamespace(debug=True, api_token="sk-" + "a" * 30),
        "collections": collections, "total": 3, "totals": [1, 2], "api_key": "sk-" + "b" * 30,
    }


def test_dict_keys_inside_a_subscript_are_facts_and_the_allowed_names(namespace):
    facts = read_facts(namespace, 'for row in rows:\n    print(row["')
    assert any("'name', 'age', 'city'" in line for line in facts.lines), facts.lines
    assert facts.continuations() == ("name", "age", "city")
    typed = read_facts(namespace, 'print(config["ba')
    assert typed.continuations() == ("tch_size",)
    assert read_facts(namespace, "print(config[").continuations() == ()  # a variable could go there


def test_dataframe_columns_with_dtypes_and_structured_array_fields(namespace):
    facts = read_facts(namespace, 'df["')
    assert "df columns: 'price' (float64), 'quantity' (int64)" in "\n".join(facts.lines)
    assert set(facts.continuations()) == {"price", "quantity", "product"}
    fields = read_facts(namespace, "readings['")
    assert "'time' (float64), 'volts' (float32)" in "\n".join(fields.lines)
    assert fields.continuations() == ("time", "volts")
    columns_as_attributes = read_facts(namespace, "total = df.qu")  # pandas answers columns as attributes
    assert set(columns_as_attributes.continuations()) == {"ery", "antile", "antity"}
    assert "quantity (column)" in columns_as_attributes.lines[-1]


def test_attributes_of_dataclass_namedtuple_enum_namespace_and_module(namespace):
    point = read_facts(namespace, "length = origin.")
    assert "x (float = 0.0)" in point.lines[-1] and "norm (method)" in point.lines[-1]
    assert set(point.continuations()) == {"x", "y", "norm"}
    assert {"left", "right", "count", "index"} <= set(read_facts(namespace, "pair.").continuations())
    assert {"RED", "GREEN"} <= set(read_facts(namespace, "Color.").continuations())
    assert set(read_facts(namespace, "settings.").continuations()) == {"debug", "api_token"}
    module = read_facts(namespace, "counts = collections.Co")
    assert module.continuations() == ("unter",) and "Counter (class)" in module.lines[-1]


def test_signature_and_keywords_after_a_keyword_argument(namespace):
    facts = read_facts(namespace, "model = fit(rows, epochs=3, ")
    assert "fit(data, target=None, *, epochs: int=10, learning_rate: float=0.01" in facts.lines[-1]
    assert "hunter2" not in "\n".join(facts.lines)  # a credential's default is redacted
    assert set(facts.continuations()) == {"target=", "learning_rate=", "password="}  # data= was given by position
    assert read_facts(namespace, "model = fit(").continuations() == ()  # a positional argument may come
    assert "Point(x: float, y: float=0.0)" in read_facts(namespace, "p = Point(").lines[-1]


def test_plain_names_nearby_shapes_and_no_credentials(namespace):
    facts = read_facts(namespace, "summary = df.describe()\nprint(api_key, settings)\nx = to")
    text = "\n".join(facts.lines)
    assert "df: DataFrame 2 rows x 3 columns" in text and "totals (list of 2 items)" in text
    assert "total (int)" in text
    assert "sk-" not in text and "api_key: str" in text
    settings = read_facts(namespace, "settings.")
    assert "sk-" not in "\n".join(settings.lines) and "api_token (str)" in settings.lines[-1]


def test_facts_stay_the_same_while_the_line_is_typed(namespace):
    prefix = "import math\nsummary = df.describe()\nvalue = df['"
    texts = {with_facts(prefix + typed, read_facts(namespace, prefix + typed)).rsplit("\n", 1)[0]
             for typed in ("", "p", "pr", "pri", "pric")}
    assert len(texts) == 1  # the prompt up to the current line does not change: its KV cache is reused
    line = with_facts("def f():\n    y = origin.", read_facts(namespace, "def f():\n    y = origin."))
    assert line.startswith(f"def f():\n    # {HEADER}\n    # origin: Point object") and line.endswith("\n    y = origin.")
    top = with_facts("y = origin.", read_facts(namespace, "y = origin."), placement="top")
    assert top.startswith(f"# {HEADER}\n") and top.endswith("\ny = origin.")
    assert with_facts("y = nothing.", read_facts(namespace, "y = nothing.")) == "y = nothing."
    at_line_start = with_facts("x = 1\n    ", read_facts(namespace, "x = origin\n    "))
    assert at_line_start.startswith(f"# {HEADER}\n") and at_line_start.endswith("\nx = 1\n    ")  # code read last
    commented = with_facts("x = 1\n# the price of each\nprices = df['", read_facts(namespace, "prices = df['"))
    assert commented.startswith(f"x = 1\n# {HEADER}\n") and commented.endswith("\n# the price of each\nprices = df['")


class Hostile:
    """Every way an object can run code when looked at: each records it, then raises."""

    calls: list = []

    def __init__(self):
        self.visible = 1

    def _record(self, what):
        Hostile.calls.append(what)
        raise RuntimeError(f"{what} ran")

    def __getattr__(self, name):
        Hostile._record(self, f"__getattr__ {name}")

    @property
    def prop(self):
        Hostile._record(self, "property")

    def __repr__(self):
        Hostile._record(self, "__repr__")

    def __len__(self):
        Hostile._record(self, "__len__")

    def __iter__(self):
        Hostile._record(self, "__iter__")

    def __eq__(self, other):
        Hostile._record(self, "__eq__")

    def __hash__(self):
        Hostile.calls.append("__hash__")
        return 1


class Meta(type):
    def __getattr__(cls, name):
        Hostile.calls.append(f"metaclass __getattr__ {name}")
        raise AttributeError(name)


class WithMeta(metaclass=Meta):
    pass


class HostileDict(dict):
    def keys(self):
        Hostile._record(self, "dict.keys")

    def __iter__(self):
        Hostile._record(self, "dict.__iter__")


def test_reading_runs_no_user_code():
    thing = Hostile()
    namespace = {"thing": thing, "things": [thing], "by_thing": {thing: 1}, "klass": WithMeta,
                 "shady": HostileDict(a=1), "frame_like": Hostile()}
    Hostile.calls.clear()  # building the dict above hashed `thing`
    prefixes = ["thing.", "thing.pr", "thing.prop.", "thing[", 'thing["', "thing(", "x = th", "things[0].",
                'by_thing["', "by_thing[", "klass.", "klass(", 'shady["', "shady.", "len(thing)\nthing.visible\nz = "]
    for prefix in prefixes:
        facts = read_facts(namespace, prefix)
        assert facts.elapsed_ms < 1000, prefix
    assert Hostile.calls == []
    facts = read_facts(namespace, "thing.")
    assert "visible (int = 1)" in facts.lines[-1] and "prop (property)" in facts.lines[-1]
    assert facts.continuations() == ()  # its __getattr__ may answer any name: nothing is allowed for sure


def test_a_namespace_changing_under_the_reader_never_raises():
    namespace = {f"name{i}": i for i in range(200)}
    stop = threading.Event()

    def mutate():
        i = 0
        while not stop.is_set():
            namespace[f"extra{i % 500}"] = [i]
            namespace.pop(f"extra{(i + 250) % 500}", None)
            i += 1

    writer = threading.Thread(target=mutate)
    writer.start()
    try:
        for _ in range(300):
            read_facts(namespace, "x = extra1\ny = na")
    finally:
        stop.set()
        writer.join()
