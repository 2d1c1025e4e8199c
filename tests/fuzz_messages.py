"""The messages the comm fuzz test sends (tests/test_comm_fuzz.py): arbitrary JSON, requests one mutation
away from valid, valid requests and huge ones, as hypothesis strategies, and how they go on the wire."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from hypothesis import strategies as st

from jupyter_codegemma import protocol


def _pack(obj) -> bytes:
    """The client's JSON: ASCII with escapes (lone surrogates as surrogate escapes), NaN/Infinity as tokens."""
    from jupyter_client.jsonutil import json_default

    return json.dumps(obj, default=json_default, ensure_ascii=True, allow_nan=True).encode("ascii")


def on_the_wire(value):
    """What the kernel's comm receives for `value`."""
    return json.loads(_pack(value))


# --- generated messages ---------------------------------------------------------------------------------

FIELDS = ("v", "type", "id", "prefix", "suffix", "language", "path", "mode", "max_new_tokens")
NEWEST = object()  # replaced by the id of the newest valid completion (or an id never sent)


@dataclass(frozen=True)
class Fresh:
    """An id to be made when the message is sent: a unique stem, then `tail` (generated text)."""
    tail: str = ""


SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff", "\udc80", "\udcff", "\ud83d", "\ude00"])
ODD_CHARS = st.sampled_from(["\x00", "\n", "\t", '"', "\\", "\u2028", "\ufeff", "\ufffd", "\U0001f600", "\u00e9",
                             "\u4e2d", "\u202e", "\U0010ffff"])
CHARS = st.one_of(st.characters(exclude_categories=()), SURROGATES, ODD_CHARS)
# Joined lists, not st.text(CHARS): text() would merge the alphabets into one set of code points, where the
# surrogates and odd characters are all but never drawn.
TEXT = st.lists(CHARS, max_size=24).map("".join)
ID = st.one_of(st.just(Fresh()), st.just(Fresh()), st.builds(Fresh, TEXT))  # a lone surrogate: invalid


def _repeat(unit: str, n: int) -> str:
    return (unit * (n // len(unit) + 1))[:n]


def long_text(lengths) -> st.SearchStrategy[str]:
    return st.builds(_repeat, st.lists(CHARS, min_size=1, max_size=3).map("".join), lengths)


# Long strings: around the limits of language (64), id (128) and path (1024) often; around those of the
# suffix (50_000) and prefix (100_000), and far past them, rarely (they cost the wire, not the kernel).
LONG_TEXT = long_text(st.sampled_from([65, 129, 1_025, 4_097]))
HUGE_TEXT = long_text(st.sampled_from([50_001, 100_001, 1_000_000]))
HUGE_INTS = st.one_of(st.integers(), st.integers(2 ** 63 - 2, 2 ** 64 + 2).map(lambda n: n * -1 if n % 2 else n),
                      st.builds(lambda sign, e: sign * 2 ** e + sign, st.sampled_from([1, -1]),
                                st.integers(64, 13_000)))  # up to ~3900 digits (Python reads at most 4300)
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1.0, 5e-324, 1.7976931348623157e308]))
SCALARS = st.one_of(st.none(), st.booleans(), HUGE_INTS, FLOATS, TEXT, TEXT, LONG_TEXT)
KEYS = st.one_of(st.sampled_from(FIELDS + ("", "__proto__", "constructor", "data", "v ")), TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                     st.dictionaries(KEYS, inner, max_size=5)), max_leaves=6)


def over(limit: int, *, at_limit: bool = True) -> st.SearchStrategy[str]:
    """Strings just over `limit` characters (and, when cheap for the model, exactly at it)."""
    return long_text(st.integers(limit if at_limit else limit + 1, limit + 3))


# A field's values at and past its edge: out of range, wrong kind, boundaries (some are valid).
EDGES = {
    "v": st.one_of(st.sampled_from([0, 2, -1, 1.5, 1.0, "1", True, False, None, [1], {"v": 1}]), HUGE_INTS, FLOATS),
    "type": st.one_of(st.sampled_from(["", "Complete", "COMPLETE", "complete ", "status\x00", "partial", "done",
                                       "cancelled", "error", "cancel\u200b"]), TEXT),
    "id": st.one_of(st.sampled_from(["", " ", "\x00"]), over(protocol.MAX_ID_CHARS), TEXT),
    "prefix": over(protocol.MAX_PREFIX_CHARS, at_limit=False),
    "suffix": over(protocol.MAX_SUFFIX_CHARS, at_limit=False),
    "language": over(protocol.MAX_LANGUAGE_CHARS),
    "path": over(protocol.MAX_PATH_CHARS),
    "mode": st.one_of(st.sampled_from(["", "Line", "lines", "block\n", " auto", "LINE", "none"]), TEXT),
    "max_new_tokens": st.one_of(st.sampled_from([0, -1, 513, 10 ** 6, 2 ** 63, -2 ** 63, True, False, 1.0, 4.5, "4"]),
                                st.integers(1, protocol.MAX_NEW_TOKENS), HUGE_INTS),
}

SHORT_CODE = st.one_of(st.sampled_from(["", "x = 1\ny =", "def f(a):\n    return", "import os\n",
                                        "for i in range(3):\n    "]), TEXT)


@st.composite
def valid_complete(draw) -> dict:
    message = {"v": 1, "type": "complete", "id": draw(ID), "prefix": draw(SHORT_CODE), "suffix": draw(SHORT_CODE),
               "language": draw(st.one_of(st.sampled_from(["python", "", "r"]), TEXT))}
    for name, values in (("path", st.one_of(st.none(), st.just("notebook.ipynb"), TEXT)),
                         ("mode", st.one_of(st.none(), st.sampled_from(protocol.MODES)))):
        if draw(st.booleans()):
            message[name] = draw(values)
    message["max_new_tokens"] = draw(st.integers(1, 4))  # tiny: the model's time stays small
    return message


BASES = {
    "complete": valid_complete(),
    "cancel": st.builds(lambda id: {"v": 1, "type": "cancel", "id": id}, ID),
    "status": st.just({"v": 1, "type": "status"}),
}


@st.composite
def near_valid(draw) -> dict:
    """A valid request with one to three things wrong with it."""
    message = dict(draw(st.sampled_from(sorted(BASES)).flatmap(BASES.__getitem__)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["drop", "edge", "any", "extra", "version"]))
        name = draw(st.sampled_from(FIELDS))
        if op == "drop":
            message.pop(name, None)
        elif op == "edge":
            message[name] = draw(EDGES[name])
        elif op == "any":
            message[name] = draw(JSON)
        elif op == "extra":
            message.update(draw(st.dictionaries(KEYS, JSON, min_size=1, max_size=3)))
        else:
            message["v"] = draw(EDGES["v"])
    return message


@st.composite
def valid_request(draw) -> dict:
    kind = draw(st.sampled_from(["status"] * 4 + ["cancel newest"] * 3 + ["cancel unknown"] * 2 + ["complete"]))
    if kind == "status":
        message = {"v": 1, "type": "status"}
    elif kind == "complete":
        message = draw(valid_complete())
    else:
        message = {"v": 1, "type": "cancel", "id": NEWEST if kind == "cancel newest" else draw(ID)}
    if draw(st.integers(0, 3)) == 0:  # unknown fields are ignored
        extra = draw(st.dictionaries(KEYS.filter(lambda k: k not in FIELDS), JSON, min_size=1, max_size=2))
        message.update(extra)
    return message


@st.composite
def huge(draw):
    """A string of 50 000 characters or more: the whole message, or in one field of a valid request."""
    text = draw(HUGE_TEXT)
    where = draw(st.sampled_from(FIELDS + ("extra", "whole")))
    if where == "whole":
        return text
    if where == "prefix" and len(text) <= protocol.MAX_PREFIX_CHARS:
        text = _repeat(text, protocol.MAX_PREFIX_CHARS + 1)  # a valid prefix this long would load the model
    message = dict(draw(st.sampled_from(sorted(BASES)).flatmap(BASES.__getitem__)))
    message["big" if where == "extra" else where] = text
    return message


# About 30 % arbitrary JSON, 48 % close to valid, 20 % valid (a tenth of them completions), 2 % huge.
MESSAGE = st.sampled_from(["json"] * 15 + ["near"] * 24 + ["valid"] * 10 + ["huge"]).flatmap(
    {"json": JSON, "near": near_valid(), "valid": valid_request(), "huge": huge()}.__getitem__)


# --- what came back, request by request ------------------------------------------------------------------
