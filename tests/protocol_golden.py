"""The tests' side of the comm protocol: the golden examples in tests/protocol/ (see its README), and
`validate_reply`, the frontend's check of a kernel -> frontend message (the twin of `validateReply` in
labextension/src/kernel/replyValidation.ts), which the tests run on every reply a kernel sends them.
The kernel itself never reads replies, so this check lives here rather than in jupyter_codegemma."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from jupyter_codegemma.protocol import (BAD_REQUEST, ERROR_CODES, OPTIONAL_STATS_FIELDS, STATES, STATS_FIELDS,
                                        UNKNOWN_TYPE, UNSUPPORTED_VERSION, VERSION, ProtocolError)
from jupyter_codegemma.protocol import _kind  # how a JSON type reads in an error, as in the kernel's errors

HERE = Path(__file__).parent / "protocol"


def expand(value):
    """Replace {"$repeat": s, "count": n} with s * n, anywhere in a JSON value."""
    if isinstance(value, dict):
        if set(value) == {"$repeat", "count"}:
            return value["$repeat"] * value["count"]
        return {k: expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v) for v in value]
    return value


def cases(name: str) -> list[dict]:
    with open(HERE / name, encoding="utf-8") as f:
        return [{**case, "message": expand(case["message"])} for case in json.load(f)]


_REPLY_FIELDS = {
    "partial": {"id": str, "text": str},
    "done": {"id": str, "text": str, "stats": dict},
    "cancelled": {"id": str},
    "status": {"model": str, "state": str, "device": str, "fim": bool, "completions_enabled": bool},
    "error": {"code": str, "message": str},
    "policy": {},  # "policy": an object or null, checked below
}


def validate_reply(data: Any) -> dict:
    """Check a kernel -> frontend message (the frontend's view); returns it, or raises ProtocolError."""
    if not isinstance(data, Mapping):
        raise ProtocolError(BAD_REQUEST, f"a reply must be a JSON object, got {_kind(data)}")
    if data.get("v") != VERSION:
        raise ProtocolError(UNSUPPORTED_VERSION, f'"v" must be {VERSION}, got {data.get("v")!r}')
    kind = data.get("type")
    if kind not in _REPLY_FIELDS:
        raise ProtocolError(UNKNOWN_TYPE, f"unknown reply type {kind!r}")
    for name, expected in _REPLY_FIELDS[kind].items():
        if not isinstance(data.get(name), expected):
            raise ProtocolError(BAD_REQUEST, f'{kind}: "{name}" must be {_kind(expected())}, got {_kind(data.get(name))}')
    if kind == "status" and data["state"] not in STATES:
        raise ProtocolError(BAD_REQUEST, f'status: "state" must be one of {", ".join(STATES)}')
    if (kind == "policy" or "policy" in data) and not isinstance(data.get("policy", 0), (dict, type(None))):
        raise ProtocolError(BAD_REQUEST, f'{kind}: "policy" must be an object or null, got {_kind(data.get("policy"))}')
    if kind == "error":
        if data["code"] not in ERROR_CODES:
            raise ProtocolError(BAD_REQUEST, f'error: unknown code {data["code"]!r}')
        if "id" in data and not isinstance(data["id"], str):
            raise ProtocolError(BAD_REQUEST, 'error: "id" must be a string when present')
    if kind == "done":
        stats = data["stats"]
        for name in STATS_FIELDS:
            value = stats.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ProtocolError(BAD_REQUEST, f'done: "stats.{name}" must be a non-negative number')
        for name in OPTIONAL_STATS_FIELDS:
            value = stats.get(name)
            if name in stats and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ProtocolError(BAD_REQUEST, f'done: "stats.{name}" must be a non-negative integer when present')
    return dict(data)
