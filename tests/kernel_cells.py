"""Running a cell in a test kernel and reading what it printed."""

from __future__ import annotations


def run_cell(ks, code: str, timeout: float = 60) -> str:
    """Execute `code` in the kernel session `ks`; its stdout (the cell must not fail)."""
    reply, outputs = ks.execute(code, timeout=timeout)
    assert reply["status"] == "ok", reply
    return "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
