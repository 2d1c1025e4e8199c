"""Load the golden comm-protocol examples in tests/protocol/ (see its README)."""

from __future__ import annotations

import json
from pathlib import Path

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
