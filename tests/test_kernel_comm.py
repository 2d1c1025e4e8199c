"""The completion service over the comm, in a real kernel started with jupyter_client.

One kernel (and one model load) for the module. Every reply the kernel sends is checked against the
protocol module, as the frontend will check it.
"""

from __future__ import annotations

import json
import math
import random
import time

import pytest

from jupyter_codegemma import protocol
from jupyter_codegemma.cli.kernel_client import KernelSession
from protocol_golden import cases, validate_reply

pytestmark = pytest.mark.slow

LONG_PREFIX = "# a list of the first hundred prime numbers, one per line\nprimes = [\n    2,\n    3,\n    5,\n"


@pytest.fixture(scope="module")
def ks():
    with KernelSession(extensions=["jupyter_codegemma"]) as session:
        comm_id = session.open_comm()
        assert session.status(comm_id)["state"] in ("loading", "ready")
        session.complete(comm_id, "import numpy as np\n", mode="line")  # load + compile once
        session.comm_id = comm_id
        yield session


def _terminal(replies):
    return [r for r in replies if r["type"] in ("done", "cancelled", "error")]


def test_partial_then_done_continues_the_prefix(ks):
    prefix = "def add(a, b):\n    return"
    replies = ks.complete(ks.comm_id, prefix, "\n\nprint(add(1, 2))\n")
    for reply in replies:
        validate_reply(reply)
    *partials, done = replies
    assert done["type"] == "done" and [r["type"] for r in partials] == ["partial"] * len(partials)
    assert partials, "expected at least one partial message"
    assert done["text"].strip(), done
    assert "\n" not in done["text"].strip("\n")  # line mode at the end of a line: one line
    for p in partials:  # each partial is the whole suggestion so far
        assert done["text"].startswith(p["text"].rstrip()) or len(p["text"]) <= len(done["text"])
    stats = done["stats"]
    assert stats["new_tokens"] >= 1 and stats["prompt_tokens"] > 5
    assert 0 < stats["ttft_ms"] <= stats["total_ms"]
    compile(prefix + done["text"], "<completion>", "exec")  # the suggestion continues the code


def test_extending_the_prefix_reuses_the_kv_cache(ks):
    first = "import math\n\ndef circle_area(radius):\n    return"
    done1 = ks.complete(ks.comm_id, first, mode="line")[-1]
    done2 = ks.complete(ks.comm_id, first + " math.pi * radius ** 2\n\ndef circle_perimeter(radius):\n    return",
                        mode="line")[-1]
    assert done1["type"] == done2["type"] == "done"
    assert done2["stats"]["reused_tokens"] > 0
    assert done2["stats"]["reused_tokens"] >= done1["stats"]["prompt_tokens"] - 2
    print(f"\n[figures] completion over the comm: first {done1['stats']}, extended {done2['stats']}")


def test_cancel_gives_cancelled_and_no_done(ks):
    request = {"v": 1, "type": "complete", "id": "to-cancel", "prefix": LONG_PREFIX, "suffix": "",
               "language": "python", "mode": "block", "max_new_tokens": 300}
    ks.send(ks.comm_id, request)
    ks.wait_reply(ks.comm_id, lambda r: r.get("id") == "to-cancel" and r["type"] == "partial", timeout=60)
    ks.send(ks.comm_id, {"v": 1, "type": "cancel", "id": "to-cancel"})
    ks.wait_reply(ks.comm_id, lambda r: r.get("id") == "to-cancel" and r["type"] in ("cancelled", "done", "error"))
    time.sleep(0.5)  # a late `done` would be here by now
    replies = [r for r in ks.replies(ks.comm_id) if r.get("id") == "to-cancel"]
    assert [r["type"] for r in _terminal(replies)] == ["cancelled"]
    # and the engine is free at once
    assert ks.complete(ks.comm_id, "x = 1\ny =", mode="line")[-1]["type"] == "done"


def test_newer_request_supersedes_older_on_the_kernel(ks):
    old = {"v": 1, "type": "complete", "id": "old", "prefix": LONG_PREFIX, "suffix": "", "language": "python",
           "mode": "block", "max_new_tokens": 300}
    ks.send(ks.comm_id, old)
    ks.wait_reply(ks.comm_id, lambda r: r.get("id") == "old" and r["type"] == "partial", timeout=60)
    started = time.monotonic()
    new = ks.complete(ks.comm_id, "name = 'world'\nprint('hello',", mode="line")
    assert new[-1]["type"] == "done"
    old_replies = [r for r in ks.replies(ks.comm_id) if r.get("id") == "old"]
    assert [r["type"] for r in _terminal(old_replies)] == ["cancelled"]
    assert time.monotonic() - started < 30  # the old one did not run its 300 tokens first


def test_status_reports_the_model(ks):
    status = ks.status(ks.comm_id)
    validate_reply(status)
    assert status["state"] == "ready" and status["device"] == "cpu"
    assert status["fim"] is False and status["completions_enabled"] is True
    assert "270" in status["model"]


def test_completion_on_a_subshell_while_the_main_shell_sleeps(ks):
    subshell = ks.create_subshell()
    comm_id = ks.open_comm(subshell_id=subshell)
    busy = ks.execute_async("import time; time.sleep(10)")
    time.sleep(0.5)  # the sleep is running
    sent = time.monotonic()
    replies = ks.complete(comm_id, "def square(x):\n    return", subshell_id=subshell, mode="line", timeout=9)
    answered = time.monotonic() - sent
    assert replies[-1]["type"] == "done", replies[-1]
    assert not ks.outputs(busy) or all(m["msg_type"] != "execute_result" for m in ks.outputs(busy))
    status_during = ks.status(comm_id, subshell_id=subshell)
    assert status_during["state"] in ("ready", "busy")
    reply = ks.wait_execute(busy, timeout=30)
    finished = time.monotonic() - sent
    assert reply["status"] == "ok"
    assert answered < finished - 2, (answered, finished)
    print(f"\n[figures] subshell completion answered in {answered * 1e3:.0f} ms while the main shell slept "
          f"(the cell finished {finished:.1f} s after the request)")


def _send_expect_error(ks, comm_id, message, timeout=30):
    before = len(ks.replies(comm_id))
    ks.send(comm_id, message)
    ks._wait(lambda: len(ks.replies(comm_id)) > before, timeout, "an error reply")
    reply = ks.replies(comm_id)[before]
    validate_reply(reply)
    return reply


def test_golden_invalid_requests_each_get_an_error(ks):
    comm_id = ks.open_comm()
    for case in cases("requests.json"):
        if "error" not in case["expect"]:
            continue
        reply = _send_expect_error(ks, comm_id, case["message"])
        assert reply["type"] == "error" and reply["code"] == case["expect"]["error"], (case["name"], reply)
        assert ("id" in reply) == case["expect"]["id_echoed"], case["name"]
    assert ks.complete(comm_id, "total = 0\nfor i in range(10):\n   ", mode="line")[-1]["type"] == "done"


def _random_value(rng, depth=0):
    choices = [lambda: rng.choice(["", "complete", "status", "cancel", "x" * rng.randint(0, 50), "\u00e9\u4e2d\U0001f600"]),
               lambda: rng.randint(-2, 3), lambda: rng.choice([math.inf, -math.inf, math.nan, 1e308, 0.5]),
               lambda: rng.choice([True, False, None]), lambda: 2 ** rng.randint(31, 80)]
    if depth < 3:
        choices += [lambda: [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))],
                    lambda: {rng.choice(["v", "type", "id", "a"]): _random_value(rng, depth + 1)}]
    return rng.choice(choices)()


def test_fuzzed_messages_get_errors_and_the_kernel_stays_correct(ks):
    rng = random.Random(4)
    comm_id = ks.open_comm()
    fields = ["v", "type", "id", "prefix", "suffix", "language", "path", "mode", "max_new_tokens"]
    sent = 0
    for _ in range(90):
        message = {"v": 1, "type": "complete", "id": f"f{sent}", "prefix": "a", "suffix": "", "language": "python"}
        for name in rng.sample(fields, rng.randint(1, 3)):
            if rng.random() < 0.3:
                message.pop(name, None)
            else:
                message[name] = _random_value(rng)
        if rng.random() < 0.1:
            message = _random_value(rng)
        try:
            protocol.parse_request(message)
            continue  # happened to be valid: not a fuzz case
        except protocol.ProtocolError as e:
            expected = e.code
        except Exception as e:  # noqa: BLE001 - the parser itself must never fail this way
            pytest.fail(f"parse_request raised {type(e).__name__} on {message!r}")
        try:
            json.dumps(message, allow_nan=False)
        except ValueError:  # NaN/inf are not JSON: no frontend can send them (jupyter_client turns them to strings)
            continue
        reply = _send_expect_error(ks, comm_id, message)
        assert reply["type"] == "error" and reply["code"] == expected, (message, reply)
        sent += 1
    assert sent >= 30
    # still alive and still correct: same answer as before the fuzzing, on a fresh comm
    comm2 = ks.open_comm()
    done = ks.complete(comm2, "def add(a, b):\n    return", "\n\nprint(add(1, 2))\n")[-1]
    assert done["type"] == "done" and done["text"].strip()
    assert ks.execute("1 + 1")[0]["status"] == "ok"


def test_disabled_completions_get_an_error(ks):
    assert ks.execute("%codegemma disable completions")[0]["status"] == "ok"
    try:
        reply = ks.complete(ks.comm_id, "x =")[-1]
        assert reply["type"] == "error" and reply["code"] == "disabled"
        assert ks.status(ks.comm_id)["completions_enabled"] is False
    finally:
        ks.execute("%codegemma enable completions")
    assert ks.complete(ks.comm_id, "x =", mode="line")[-1]["type"] == "done"
