"""Comm fuzzing at volume: thousands of generated messages through one real kernel's comm (hypothesis).

One kernel (jupyter_client, the extension loaded) and one comm for the run. Each hypothesis example is a
batch of BATCH messages: arbitrary JSON values, requests close to valid (a valid `complete`, `cancel` or
`status` with fields mutated, dropped, of the wrong type, out of range, extra, or a wrong "v"), and valid
requests (statuses; cancels of the newest completion or of unknown ids; a few tiny completions, which the
next one supersedes). The batch is sent without waiting, then a `status` as a barrier, and the test waits
for every reply due by the barrier; completions run on the model meanwhile and are checked once their
terminal reply is in (about one batch in ten waits for them, so that some run to `done`).

What "answered exactly once" means, from protocol.py and kernel/comm.py, for what the kernel receives:
  - a message parse_request refuses: exactly one `error`, its code the parser's, carrying the request's id
    when one could be read (a string of 1..128 characters) and no id otherwise;
  - a valid `status`: exactly one `status`;
  - a valid `cancel`: no reply of its own (a pending completion it names ends `cancelled`);
  - a valid `complete`: `partial`s, then exactly one terminal reply (done, cancelled, or error `busy`).
Replies are matched to their request by the IOPub parent header (the kernel sends each reply in its
request's context), so even messages with no readable id are matched one to one; a `cancelled` for a
superseded completion rides on the newer request's header, so completions' replies are matched by id
(every valid completion gets an id of its own). No reply may carry a traceback or fail validate_reply,
and error messages stay short (the kernel does not echo what it was sent). Afterwards the kernel must
still complete code correctly and answer `status`.

On the wire the client writes JSON the way a browser does for strings (a lone UTF-16 surrogate as a
surrogate escape) and sends NaN/Infinity as Python's json writes them (a browser would send null; the
kernel's json reads them, so they reach the kernel's checks). Values nested about 1000 deep, or integers
over 4300 digits, never reach the comm: ipykernel's own JSON decoding drops the message first.

CODEGEMMA_FUZZ_MESSAGES sets the count: 1000 by default (make test), 10000 in `make fuzz`.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from dataclasses import dataclass, field
from collections.abc import Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_codegemma import protocol
from protocol_golden import validate_reply

from fuzz_messages import (Fresh, MESSAGE, NEWEST, _pack, on_the_wire)

MESSAGES = int(os.environ.get("CODEGEMMA_FUZZ_MESSAGES", "1000"))
BATCH = 50  # messages a hypothesis example sends before it waits for their replies
MAX_ERROR_MESSAGE = 5_000  # characters; an out-of-range integer of ~3900 digits is the longest honest echo
TRACEBACK = "Traceback (most recent call last)"
TERMINAL = ("done", "cancelled", "error")

# --- the wire -------------------------------------------------------------------------------------------


@dataclass
class Expect:
    kind: str  # "error", "status", "none", "complete"
    sent: str  # the message, shortened, for reports
    code: str | None = None  # "error": the code
    id: str | None = None  # "error": the id to echo (None: none); "complete": its id
    replies: list = field(default_factory=list)
    expensive: bool = False  # a valid completion that may run long: cancelled after its batch
    checked: bool = False  # a reply after this is one too many

    def answered(self) -> bool:
        if self.kind in ("error", "status"):
            return bool(self.replies)
        if self.kind == "complete":
            return any(r["type"] in TERMINAL for r in self.replies)
        return True


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 300 else f"{text[:300]}... ({len(text)} characters)"


def readable_id(message) -> str | None:
    """The id an error must echo: a string the frontend could have sent (1..128 characters of text)."""
    if not isinstance(message, Mapping):
        return None
    value = message.get("id")
    if not isinstance(value, str) or not 0 < len(value) <= protocol.MAX_ID_CHARS:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not text a reply can carry
        return None
    return value


class Ledger:
    """Every message sent on the fuzzed comm and every reply it got."""

    def __init__(self, ks, comm_id: str):
        self.ks, self.comm_id = ks, comm_id
        self.by_parent: dict[str, Expect] = {}  # shell msg_id -> expectation
        self.completes: dict[str, tuple[str, Expect]] = {}  # request id -> (msg_id, expectation)
        self.problems: list[str] = []
        self.seen = 0  # replies on the comm absorbed so far
        self.sent = self.generated = self.replies = self.partials = self.batches = 0
        self.kernel_s = 0.0  # from a batch's first message sent to its last reply
        self.codes: dict[str, int] = {}
        self.terminals: dict[str, int] = {}
        self._ids = itertools.count()
        self.newest_complete: str | None = None

    def fresh_id(self) -> str:
        return f"fz-{next(self._ids)}"

    # --- sending ---

    def send(self, message) -> Expect:
        message = self._resolve(message)
        wire = on_the_wire(message)
        try:
            request = protocol.parse_request(wire)
        except protocol.ProtocolError as e:
            expect = Expect("error", _short(wire), code=e.code, id=readable_id(wire))
        else:
            if isinstance(request, protocol.Complete):
                if request.id in self.completes:  # a generated id used before: completions need their own
                    message, wire = dict(message, id=self.fresh_id()), None
                    return self.send(message)
                expect = Expect("complete", _short(wire), id=request.id)
                expect.expensive = (request.max_new_tokens is None or request.max_new_tokens > 8
                                    or len(request.prefix) + len(request.suffix) > 2_000)
                self.newest_complete = request.id
            elif isinstance(request, protocol.Cancel):
                expect = Expect("none", _short(wire))
            else:
                expect = Expect("status", _short(wire))
        msg_id = self.ks.send(self.comm_id, message)
        with self.ks._lock:
            self.by_parent[msg_id] = expect
            if expect.kind == "complete":
                self.completes[expect.id] = (msg_id, expect)
        self.sent += 1
        return expect

    def _resolve(self, message):
        if isinstance(message, dict) and isinstance(message.get("id"), Fresh):
            return dict(message, id=f"{self.fresh_id()}:{message['id'].tail}"[:protocol.MAX_ID_CHARS])
        if isinstance(message, dict) and message.get("id") is NEWEST:
            return dict(message, id=self.newest_complete or self.fresh_id())
        return message

    # --- receiving (under ks._lock) ---

    def absorb(self) -> None:
        raw = self.ks._by_comm.get(self.comm_id, [])
        for msg in raw[self.seen:]:
            self._file(msg["content"]["data"], msg["parent_header"].get("msg_id", ""))
        self.seen = len(raw)

    def _file(self, reply, parent: str) -> None:
        self.replies += 1
        try:
            validate_reply(reply)
        except protocol.ProtocolError as e:
            self.problems.append(f"invalid reply {_short(reply)}: {e.message}")
            return
        text = json.dumps(reply, ensure_ascii=False)
        if TRACEBACK in text:
            self.problems.append(f"a reply with a traceback: {_short(reply)}")
        kind = reply["type"]
        owner = self.completes.get(reply.get("id")) if isinstance(reply.get("id"), str) else None
        if kind in ("partial", "done", "cancelled") or (kind == "error" and owner and owner[0] == parent):
            if owner is None:
                self.problems.append(f"a {kind} for no completion sent: {_short(reply)}")
                return
            expect = owner[1]
        else:
            expect = self.by_parent.get(parent)
            if expect is None:
                self.problems.append(f"a reply to no message sent: {_short(reply)}")
                return
        if expect.checked:
            self.problems.append(f"a {kind} after all the replies to {expect.sent}: {_short(reply)}")
        expect.replies.append(reply)

    # --- checking ---

    def check_finished_completions(self) -> None:
        for _, expect in self.completes.values():
            if not expect.checked and expect.answered():
                self.check(expect)

    def check(self, expect: Expect) -> None:
        """Record what is wrong with the replies of one message (all have arrived)."""
        expect.checked = True
        replies, kinds = expect.replies, [r["type"] for r in expect.replies]
        where = f"for {expect.sent}"
        if expect.kind == "error":
            if kinds != ["error"]:
                self.problems.append(f"expected one error, got {kinds} {where}: {replies}")
                return
            reply = replies[0]
            self.codes[reply["code"]] = self.codes.get(reply["code"], 0) + 1
            if reply["code"] != expect.code or reply.get("id") != expect.id:
                self.problems.append(f"expected error {expect.code} with id {expect.id!r}, got {_short(reply)} {where}")
            if len(reply["message"]) > MAX_ERROR_MESSAGE:
                self.problems.append(f"an error message of {len(reply['message'])} characters {where}")
        elif expect.kind == "status":
            if kinds != ["status"]:
                self.problems.append(f"expected one status, got {kinds} {where}")
        elif expect.kind == "none":
            if kinds:
                self.problems.append(f"expected no reply to a cancel, got {kinds} {where}")
        else:
            terminal = [r for r in replies if r["type"] in TERMINAL]
            self.partials += len(replies) - len(terminal)
            if len(terminal) != 1 or replies[-1] is not terminal[0]:
                self.problems.append(f"expected partials then one terminal reply, got {kinds} {where}")
                return
            end = terminal[0]
            if end["type"] == "error" and end["code"] != protocol.BUSY:
                self.problems.append(f"a valid completion failed: {_short(end)} {where}")
            key = end["type"] if end["type"] != "error" else f"error {end['code']}"
            self.terminals[key] = self.terminals.get(key, 0) + 1


def _send_batch(ledger: Ledger, batch: list, settle: bool = False) -> None:
    """Send a batch and check every reply it must have had by its barrier. Completions run on the model
    meanwhile: each is checked once its terminal reply is in, in this batch or a later one, or at the end;
    `settle` waits for them (so that some run to `done` rather than being superseded by the next batch)."""
    ks, started = ledger.ks, time.monotonic()
    timeout = 60 if settle else 30  # a barrier takes a second or two; so a lost reply fails soon (and shrinks)
    expects = [ledger.send(message) for message in batch]
    ledger.generated += len(batch)
    newest = ledger.completes.get(ledger.newest_complete or "")
    if newest is not None and newest[1] in expects and newest[1].expensive:  # keep the model's time short
        expects.append(ledger.send({"v": 1, "type": "cancel", "id": newest[1].id}))
    expects.append(ledger.send({"v": 1, "type": "status"}))  # the barrier: every earlier reply is before it

    def all_answered() -> bool:
        ledger.absorb()
        return all(e.answered() for e in expects if settle or e.kind != "complete")

    try:
        ks._wait(all_answered, timeout, "the batch's replies")
    except TimeoutError:
        missing = [e.sent for e in expects if not e.answered()]
        raise AssertionError(f"{len(missing)} of {len(expects)} messages unanswered after {timeout} s, "
                             f"e.g. {missing[:3]}") from None
    with ks._lock:
        ledger.absorb()
        for expect in expects:
            if expect.kind != "complete":
                ledger.check(expect)
        ledger.check_finished_completions()
    ledger.batches += 1
    ledger.kernel_s += time.monotonic() - started
    assert not ledger.problems, "\n".join(ledger.problems[:10])


# --- the kernel -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_kernel():
    """A real kernel with the extension loaded (as tests/test_kernel_comm.py starts it), the model warm."""
    import jupyter_codegemma
    from jupyter_codegemma.cli.kernel_client import KernelSession

    with KernelSession(extensions=["jupyter_codegemma"]) as session:
        session.kc.session.pack = _pack
        reply, outputs = session.execute("import jupyter_codegemma; print(jupyter_codegemma.__file__)")
        assert reply["status"] == "ok"
        kernel_file = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream").strip()
        assert kernel_file == jupyter_codegemma.__file__, (kernel_file, jupyter_codegemma.__file__)
        comm_id = session.open_comm()
        assert session.complete(comm_id, "import numpy as np\n", mode="line")[-1]["type"] == "done"  # load + compile
        session.comm_id = comm_id
        yield session


@pytest.mark.slow
def test_generated_messages_are_each_answered_once_and_the_kernel_stays_correct(fuzz_kernel):
    ks = fuzz_kernel
    ledger = Ledger(ks, ks.open_comm())
    batches = math.ceil(MESSAGES / BATCH)

    @settings(max_examples=batches, deadline=None, database=None, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(batch=st.lists(MESSAGE, min_size=BATCH, max_size=BATCH), settle=st.integers(0, 9))
    def fuzz(batch, settle):
        _send_batch(ledger, batch, settle=settle == 0)

    started = time.monotonic()
    while ledger.generated < MESSAGES:  # hypothesis may run fewer examples than asked
        fuzz()
    # The completions still on the model end; then a pause, for late replies (a second terminal reply, say).
    ks._wait(lambda: ledger.absorb() or all(e.answered() for _, e in ledger.completes.values()), 300,
             "the completions' terminal replies")
    elapsed = time.monotonic() - started
    time.sleep(1.0)
    with ks._lock:
        ledger.absorb()
        ledger.check_finished_completions()
    assert not ledger.problems, "\n".join(ledger.problems[:10])
    assert ledger.generated >= MESSAGES and all(e.checked for e in ledger.by_parent.values())

    print(f"\n[figures] comm fuzzing: {ledger.sent} messages sent ({ledger.generated} generated, the rest barriers "
          f"and cancels) in {ledger.batches} batches, {ledger.replies} "
          f"replies ({ledger.partials} partial), {elapsed:.1f} s: {ledger.sent / elapsed:.0f} messages/s "
          f"({ledger.kernel_s:.1f} s from the batches' first messages to their barriers' replies, "
          f"{ledger.sent / ledger.kernel_s:.0f} messages/s; the rest is hypothesis generating); errors by code "
          f"{dict(sorted(ledger.codes.items()))}; {len(ledger.completes)} completions ended "
          f"{dict(sorted(ledger.terminals.items()))}")

    # Alive and correct: the same comm and a fresh one complete code, status answers, cells run.
    for comm_id in (ledger.comm_id, ks.open_comm()):
        prefix = "def add(a, b):\n    return"
        replies = ks.complete(comm_id, prefix, "\n\nprint(add(1, 2))\n")
        for reply in replies:
            validate_reply(reply)
        done = replies[-1]
        assert done["type"] == "done" and done["text"].strip(), replies
        compile(prefix + done["text"], "<completion>", "exec")
        status = validate_reply(ks.status(comm_id))
        assert status["state"] == "ready" and status["completions_enabled"] is True
    assert ks.execute("1 + 1")[0]["status"] == "ok"


# --- what the fuzzing found (the parser, no kernel) ------------------------------------------------------


def test_a_lone_surrogate_in_text_becomes_a_replacement_character():
    """The frontend cuts the prefix to its limit in UTF-16 units, which can split a surrogate pair; the
    tokenizer cannot take the half that is left (it failed as an `internal` error)."""
    request = protocol.parse_request(on_the_wire({"v": 1, "type": "complete", "id": "r1", "prefix": "\ude00x = 1",
                                                  "suffix": "\ud83d", "language": "py\udc80", "path": "\udfff.py"}))
    assert (request.prefix, request.suffix, request.language, request.path) == \
        ("\ufffdx = 1", "\ufffd", "py\ufffd", "\ufffd.py")
    assert protocol.parse_request({"v": 1, "type": "complete", "id": "r1", "prefix": "\U0001f600",
                                   "suffix": "", "language": "python"}).prefix == "\U0001f600"


@pytest.mark.parametrize("bad_id", ["\ud800", "r\udc80", "\udfff" * 3])
def test_an_id_with_a_lone_surrogate_is_refused_and_not_echoed(bad_id):
    """ipykernel writes replies as UTF-8: an id with a lone surrogate could not be sent back (the reply was
    lost, or its id garbled)."""
    for message in ({"v": 1, "type": "complete", "id": bad_id, "prefix": "", "suffix": "", "language": "python"},
                    {"v": 1, "type": "cancel", "id": bad_id}, {"v": 1, "type": "nope", "id": bad_id}):
        with pytest.raises(protocol.ProtocolError) as e:
            protocol.parse_request(message)
        assert e.value.id is None
        json.dumps(e.value.reply(), ensure_ascii=False).encode("utf-8")
    assert isinstance(protocol.parse_request({"v": 1, "type": "status", "id": bad_id}), protocol.Status)


def test_an_error_does_not_echo_a_huge_value():
    with pytest.raises(protocol.ProtocolError) as e:
        protocol.parse_request({"v": "x" * 1_000_000, "type": "status"})
    assert e.value.code == protocol.UNSUPPORTED_VERSION and len(e.value.message) < 200
