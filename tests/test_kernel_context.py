"""The kernel-context facts in a real kernel, through the comm: reading the namespace runs none of the
user's code, and completions are answered while a cell rewrites the namespace.

One kernel (and one model load) for the module.
"""

from __future__ import annotations

import re
import time

import pytest

from jupyter_codegemma.cli.kernel_client import KernelSession
from kernel_cells import run_cell
from protocol_golden import validate_reply

pytestmark = pytest.mark.slow

SLEEP_S = 10  # what each sleeping trap costs if it runs
FACTS_BUDGET_MS = 50.0  # the reader stops adding facts after 8 ms; this leaves room for a loaded CI machine

TRAPS = f'''
import time
calls = []

class Trap:
    """Each way of looking at it records the look, then raises or sleeps."""
    def __init__(self):
        self.visible = 1
    def __getattr__(self, name):
        calls.append(f"__getattr__ {{name}}")
        raise AttributeError(name)
    @property
    def prop(self):
        calls.append("property")
        time.sleep({SLEEP_S})
    def __repr__(self):
        calls.append("__repr__")
        raise RuntimeError("repr ran")
    def __len__(self):
        calls.append("__len__")
        time.sleep({SLEEP_S})
        return 1
    def __iter__(self):
        calls.append("__iter__")
        raise RuntimeError("iter ran")
    def __eq__(self, other):
        calls.append("__eq__")
        return False
    __hash__ = object.__hash__

trap = Trap()
traps = [trap]
by_trap = {{trap: 1}}
calls.clear()
'''

CURSORS = ["trap.", "trap.pr", "trap.prop.", "trap[", 'trap["', "trap(", "len(trap)\nx = tr", "traps[0].",
           'by_trap["', "for item in trap:\n    item.", "print(trap, traps)\ny = "]


@pytest.fixture(scope="module")
def ks():
    with KernelSession(extensions=["jupyter_codegemma"]) as session:
        session.comm_id = session.open_comm()
        session.complete(session.comm_id, "import numpy as np\n", mode="line", timeout=600)  # load + compile once
        yield session


def _problems(ks) -> list[dict]:
    """Every error or stderr output the kernel sent on IOPub so far."""
    with ks._lock:
        messages = [m for ms in ks._by_parent.values() for m in ms]
    # ipykernel's "No such comm" note is left out: a comm message that reached a subshell before the
    # comm_open it follows was handled (the harness opening a comm and sending at once), not an error
    # of ours; every completion the tests send must still be answered.
    return [m for m in messages if m["msg_type"] == "error"
            or (m["msg_type"] == "stream" and m["content"].get("name") == "stderr"
                and not m["content"].get("text", "").startswith("No such comm"))]


def _facts_read_ms(ks) -> float:
    shown = run_cell(ks, "%codegemma debug last-prompt completion")
    found = re.search(r"kernel facts: \d+, read in ([\d.]+) ms", shown)
    assert found, shown
    return float(found.group(1))


def test_completions_on_traps_run_none_of_their_code(ks):
    before = len(_problems(ks))
    run_cell(ks, TRAPS)
    for prefix in CURSORS:
        sent = time.monotonic()
        replies = ks.complete(ks.comm_id, prefix, mode="line", max_new_tokens=6, timeout=SLEEP_S * 3)
        took = time.monotonic() - sent
        for reply in replies:
            validate_reply(reply)
        done = replies[-1]
        assert done["type"] == "done", (prefix, done)
        assert "context_facts" in done["stats"], done
        # Waiting and reading, outside the model's own time: a trap that slept would be here.
        assert took - done["stats"]["total_ms"] / 1e3 < SLEEP_S, (prefix, took, done["stats"])
        assert _facts_read_ms(ks) < FACTS_BUDGET_MS, prefix
    assert run_cell(ks, "print(calls)").strip() == "[]"
    assert [(m["parent_header"].get("msg_type"), m["content"]) for m in _problems(ks)[before:]] == []
    shown = run_cell(ks, "%codegemma debug last-prompt completion")
    assert "trap: Trap object" in shown  # described from its type, not its repr


def test_kernel_context_can_be_switched_off(ks):
    run_cell(ks, "settings = {'learning_rate': 0.1, 'epochs': 3}")
    on = ks.complete(ks.comm_id, 'rate = settings["', mode="line", max_new_tokens=6)[-1]
    assert on["stats"]["context_facts"] >= 1
    shown = run_cell(ks, "%codegemma debug last-prompt completion")
    assert "settings keys: 'learning_rate', 'epochs'" in shown
    assert "must start with one of 2 names: 'learning_rate', 'epochs'" in shown
    assert "codegemma: kernel_context = False" in run_cell(ks, "%codegemma set kernel_context off")
    try:
        off = ks.complete(ks.comm_id, 'rate = settings["', mode="line", max_new_tokens=6)[-1]
        assert off["type"] == "done" and "context_facts" not in off["stats"]
        assert "kernel facts: off" in run_cell(ks, "%codegemma debug last-prompt completion")
    finally:
        run_cell(ks, "%codegemma set kernel_context on")


MUTATING_CELL = '''
import time
stop_at = time.monotonic() + {seconds}
step = 0
while time.monotonic() < stop_at:
    globals()[f"temp_{{step % 400}}"] = {{"step": step, "values": [step] * (step % 5)}}
    globals().pop(f"temp_{{(step + 200) % 400}}", None)
    step += 1
print("steps", step)
'''


def test_completions_while_a_cell_rewrites_the_namespace(ks):
    before = len(_problems(ks))
    subshell = ks.create_subshell()
    comm_id = ks.open_comm(subshell_id=subshell)
    busy = ks.execute_async(MUTATING_CELL.format(seconds=8))
    time.sleep(0.5)  # the loop is running
    prefixes = ["x = temp_1", 'value = temp_7["', "temp_3.", "y = te", "print(temp_9['st"]
    answered = []
    for i in range(10):
        replies = ks.complete(comm_id, prefixes[i % len(prefixes)], subshell_id=subshell, mode="line",
                              max_new_tokens=4, timeout=60)
        assert replies[-1]["type"] == "done", replies[-1]
        answered.append(time.monotonic())
    reply = ks.wait_execute(busy, timeout=60)
    finished = time.monotonic()
    assert reply["status"] == "ok"
    assert sum(t < finished - 0.5 for t in answered) >= 3  # several were answered while the cell ran
    assert [m["content"] for m in _problems(ks)] == []
    assert run_cell(ks, "print(1 + 1)").strip() == "2"
