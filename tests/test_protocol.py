"""The comm protocol module against the golden examples both sides load (tests/protocol/*.json)."""

from __future__ import annotations

import pytest

from jupyter_codegemma import protocol
from protocol_golden import cases, validate_reply

REQUESTS = cases("requests.json")
REPLIES = cases("replies.json")


@pytest.mark.parametrize("case", REQUESTS, ids=[c["name"] for c in REQUESTS])
def test_requests(case):
    expect = case["expect"]
    if "type" in expect:
        request = protocol.parse_request(case["message"])
        assert type(request).__name__.lower() == expect["type"]
        return
    with pytest.raises(protocol.ProtocolError) as caught:
        protocol.parse_request(case["message"])
    reply = caught.value.reply()
    assert reply["code"] == expect["error"], reply["message"]
    assert ("id" in reply) == expect["id_echoed"]
    assert len(reply["message"]) < 300  # says what is wrong without echoing the input
    validate_reply(reply)


@pytest.mark.parametrize("case", REPLIES, ids=[c["name"] for c in REPLIES])
def test_replies(case):
    if case["valid"]:
        assert validate_reply(case["message"]) == case["message"]
    else:
        with pytest.raises(protocol.ProtocolError):
            validate_reply(case["message"])


def test_reply_builders_make_valid_replies():
    for reply in (protocol.partial("a", "x"), protocol.cancelled("a"), protocol.error(protocol.BUSY, "m", "a"),
                  protocol.done("a", "x", prompt_tokens=3, reused_tokens=1, new_tokens=2, ttft_ms=1.25, total_ms=2),
                  protocol.status(model="m", state="ready", device="cpu", fim=True, completions_enabled=False)):
        assert validate_reply(reply)["v"] == protocol.VERSION


def test_complete_fields_parsed():
    request = protocol.parse_request({"v": 1, "type": "complete", "id": "q", "prefix": "a", "suffix": "b",
                                      "language": "python", "path": "x.py", "mode": "block", "max_new_tokens": 9})
    assert request == protocol.Complete(id="q", prefix="a", suffix="b", language="python", path="x.py",
                                        mode="block", max_new_tokens=9)


def test_every_error_code_is_documented():
    from pathlib import Path

    page = (Path(__file__).parents[1] / "docs" / "protocol.md").read_text(encoding="utf-8")
    for code in protocol.ERROR_CODES:
        assert f"`{code}`" in page, code


def test_import_is_cheap():
    import subprocess
    import sys

    code = "import sys, jupyter_codegemma, jupyter_codegemma.protocol; print('jax' in sys.modules, 'IPython' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
