"""The remote backend's edge cases against a tiny in-process HTTP server that misbehaves on purpose.

The behaviour with a real server (llama-cpp-python) is in test_remote_server.py; here are the cases a
real server will not produce on demand: malformed events, error events, refused keys, a server that
is down or starting, a stream cut short.
"""

from __future__ import annotations

import http.server
import json
import select
import socket
import threading
import time

import pytest
from http_fakes import QuietHandler

from jupyter_codegemma.backends.errors import PromptError
from jupyter_codegemma.backends.remote.transport import Endpoint, ServerError, ServerUnavailable, stream_events
from jupyter_codegemma.backends.remote.client import RemoteEngine, RemoteOptions, model_has_fim


class FakeServer:
    """Answers /v1/models with `models`, and each POST with the next entry of `script`:
    (status, [sse data strings] or a JSON body, delay between events)."""

    def __init__(self, models=("fake-model",)):
        self.models = list(models)
        self.script: list = []
        self.requests: list[dict] = []
        self.disconnected = threading.Event()
        server = self

        class Handler(QuietHandler):

            def do_GET(self):
                server.requests.append({"path": self.path, "headers": dict(self.headers)})
                self._json(200, {"object": "list", "data": [{"id": m} for m in server.models]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, events, delay = server.script.pop(0) if server.script else (200, _events("ok"), 0)
                if status != 200 or not isinstance(events, list):
                    self._json(status, events)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for event in events:
                        if event is None:  # cut the connection here
                            self.wfile.flush()
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        data = f"{event}\r\n".encode()
                        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                        self.wfile.flush()
                        time.sleep(delay)
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    server.disconnected.set()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _events(*pieces, finish="stop"):
    chunks = [f"data: {json.dumps({'choices': [{'text': p, 'finish_reason': None}]})}\n" for p in pieces]
    chunks.append(f"data: {json.dumps({'choices': [{'text': '', 'finish_reason': finish}]})}\n")
    return [": ping\n"] + chunks + ["data: [DONE]\n"]


@pytest.fixture
def fake():
    server = FakeServer()
    yield server
    server.close()


def _engine(url, **options):
    return RemoteEngine.load(RemoteOptions(url=url, backoff=0.05, **options))


def test_streams_pieces_and_sends_the_request_it_should(fake, monkeypatch):
    monkeypatch.setenv("CODEGEMMA_API_KEY", "sk-test-123")
    engine = _engine(fake.url + "/v1/")  # a trailing /v1/ is the same server
    fake.script = [(200, _events("def", " add", "(a, b):"), 0)]
    generation = engine.generate("# add two numbers\n", max_new_tokens=9)
    assert list(generation) == ["def", " add", "(a, b):"]
    result = generation.result
    assert result.text == "def add(a, b):" and result.stats.finish_reason == "stop" and result.stats.new_tokens == 3
    request = fake.requests[-1]
    assert request["path"] == "/v1/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test-123"
    assert request["body"]["prompt"] == "# add two numbers\n" and request["body"]["max_tokens"] == 9
    assert request["body"]["stream"] is True and request["body"]["temperature"] == 0.0
    assert "sk-test-123" not in json.dumps(engine.info())  # the key is never shown


def test_fim_prompt_as_text_for_codegemma_and_prefix_only_otherwise():
    assert model_has_fim("google/codegemma-2b") and model_has_fim("codegemma-7b-Q4_K_M.gguf")
    assert not model_has_fim("google/codegemma-7b-it") and not model_has_fim("gemma-3-270m")
    server = FakeServer(models=["google/codegemma-2b", "gemma-3-270m"])
    try:
        fim = _engine(server.url, model="google/codegemma-2b")
        server.script = [(200, _events("a + b"), 0)]
        assert fim.complete("def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n", path="m.py").wait().text == "a + b"
        body = server.requests[-1]["body"]
        assert body["prompt"] == ("m.py\n<|fim_prefix|>def add(a, b):\n    return <|fim_suffix|>\n\nprint(add(1, 2))\n"
                                  "<|fim_middle|>")
        assert "<|file_separator|>" in body["stop"] and "\n" in body["stop"]  # line mode ends at its newline
        plain = _engine(server.url, model="gemma-3-270m")
        server.script = [(200, _events("a + b)\nprint"), 0)]
        completion = plain.complete("print(add(", ")\n", mode="line")
        assert completion.wait().text == "a + b" and completion.result.layout == "prefix-only"
        assert server.requests[-1]["body"]["prompt"] == "print(add("  # the suffix stops and trims, not sent
        forced = _engine(server.url, model="gemma-3-270m", fim="yes")
        assert forced.has_fim
        with pytest.raises(ServerError, match="does not serve 'nope'.*gemma-3-270m"):
            _engine(server.url, model="nope")
    finally:
        server.close()


def test_a_complete_suggestion_closes_the_stream(fake):
    engine = _engine(fake.url)
    fake.script = [(200, _events(*(["x"] * 5 + ["\n"] + ["y"] * 200)), 0.01)]
    started = time.monotonic()
    completion = engine.complete("value = ", "", mode="line")
    assert completion.wait().text == "xxxxx" and completion.result.stats.finish_reason == "stop"
    assert time.monotonic() - started < 1.5  # did not read the other 200 events
    assert fake.disconnected.wait(5)  # the server saw the client go


def test_cancel_closes_the_stream_and_reports_cancelled(fake):
    engine = _engine(fake.url)
    fake.script = [(200, _events(*["tok "] * 400), 0.01)]
    cancel = threading.Event()
    generation = engine.generate("count:", max_new_tokens=400, cancel=cancel)
    pieces = 0
    for _ in generation:
        pieces += 1
        if pieces == 3:
            cancel.set()
    assert pieces <= 4 and generation.result.stats.finish_reason == "cancelled"
    assert fake.disconnected.wait(5)


@pytest.mark.parametrize("events, message", [
    (["data: {not json\n"], "not JSON"),
    ([f"data: {json.dumps({'error': {'message': 'out of memory'}})}\n"], "out of memory"),
    ([f"data: {json.dumps({'choices': [{'text': 'a', 'finish_reason': None}]})}\n", None],
     "closed the stream|broke in the middle"),
    ([f"data: {json.dumps({'choices': [{'text': 'a', 'finish_reason': None}]})}\n", "data: [DONE]\n"],
     "interrupt_requests"),
])
def test_broken_streams_are_one_line_errors(fake, events, message):
    engine = _engine(fake.url)
    fake.script = [(200, events, 0)]
    with pytest.raises(ServerError, match=message) as info:
        engine.generate("x", max_new_tokens=4).wait()
    assert "\n" not in str(info.value)


def test_http_errors_say_what_the_server_said(fake):
    engine = _engine(fake.url)
    fake.script = [(401, {"error": {"message": "Invalid API key"}}, 0)]
    with pytest.raises(ServerError, match="HTTP 401: Invalid API key.*api_key_env"):
        engine.generate("x").wait()
    fake.script = [(400, {"error": {"message": "Requested tokens (5000) exceed context window of 4096"}}, 0)]
    with pytest.raises(PromptError, match="exceed context window"):
        engine.generate("x").wait()


def test_a_starting_server_is_retried_then_answers(fake):
    engine = _engine(fake.url)
    fake.script = [(503, {"detail": "loading model"}, 0), (503, {"detail": "loading model"}, 0),
                   (200, _events("ready"), 0)]
    assert engine.generate("x").wait().text == "ready"
    fake.script = [(503, {"detail": "loading model"}, 0)] * 4
    with pytest.raises(ServerUnavailable, match="HTTP 503"):
        engine.generate("x").wait()


def test_a_server_that_is_down_is_a_clear_error_after_backing_off():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ServerUnavailable) as info:
        RemoteEngine.load(RemoteOptions(url=f"http://127.0.0.1:{port}", retries=3, backoff=0.1))
    waited = time.monotonic() - started
    assert "cannot reach the server at http://127.0.0.1" in str(info.value) and "connection refused" in str(info.value)
    assert "4 attempts" in str(info.value) and 0.6 <= waited < 10  # 0.1 + 0.2 + 0.4 s of back-off
    with pytest.raises(ServerError, match="must look like"):
        Endpoint("localhost:8000")


def test_a_silent_server_times_out(fake):
    fake.script = [(200, [": ping\n"] + [f"data: {json.dumps({'choices': [{'text': 'a', 'finish_reason': None}]})}\n"]
                    + ["data: [DONE]\n"], 1.5)]
    with pytest.raises(ServerError, match="sent nothing for 0.5 s"):
        list(stream_events(Endpoint(fake.url, read_timeout=0.5), "/v1/completions", {"prompt": "x"}))


def test_cancel_while_backing_off_from_a_server_that_went_away(fake):
    engine = RemoteEngine.load(RemoteOptions(url=fake.url, retries=5, backoff=2.0))
    fake.close()  # up when the kernel connected, gone now
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    generation = engine.generate("x", cancel=cancel)
    assert list(generation) == [] and generation.result.stats.finish_reason == "cancelled"
    assert time.monotonic() - started < 1.5  # not the 2 + 4 + ... s of back-off


def test_cancel_before_the_server_answers_drops_the_request():
    """A request the server has queued (no answer started yet) is dropped as soon as it is cancelled: the
    server sees the client go, rather than finding out when it writes the answer."""
    gone = threading.Event()

    class Queueing(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            readable, _, _ = select.select([self.connection], [], [], 5)  # "queued": wait, watching the socket
            try:
                if readable and self.connection.recv(1, socket.MSG_PEEK) == b"":
                    gone.set()
            except OSError:  # reset
                gone.set()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Queueing)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        cancel = threading.Event()
        threading.Timer(0.2, cancel.set).start()
        started = time.monotonic()
        endpoint = Endpoint(f"http://127.0.0.1:{httpd.server_address[1]}")
        assert list(stream_events(endpoint, "/v1/completions", {"prompt": "x"}, cancel)) == []
        assert time.monotonic() - started < 1.5
        assert gone.wait(1.0)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_events_end_only_at_sse_line_ends(fake):
    """U+2028 and NEL may stand unescaped inside JSON: only CR, LF and CRLF end an SSE line."""
    text = "a\u2028b\x85c\u2029"
    event = json.dumps({"choices": [{"text": text, "finish_reason": "stop"}]}, ensure_ascii=False)
    fake.script = [(200, [f"data: {event}\r", "data: [DONE]\r"], 0)]
    events = list(stream_events(Endpoint(fake.url), "/v1/completions", {"prompt": "x"}))
    assert [e["choices"][0]["text"] for e in events] == [text]


def test_a_server_suggestion_that_fails_the_check_is_withheld(fake):
    """A server cannot mask its logits nor branch: its suggestion is judged whole (backends/candidates.py)."""
    engine = _engine(fake.url)
    prefix, suffix = "def total(xs):\n    s = 0\n    for x in xs:\n", "\n    return s\n"
    fake.script = [(200, _events("        s += x\n"), 0), (200, _events("    s += x\n"), 0)]
    good = engine.complete(prefix, suffix, mode="line").wait()
    assert good.text == "        s += x" and good.checked == "passed"
    bad = engine.complete(prefix, suffix, mode="line").wait()  # the `for` would have no body
    assert bad.text == "" and bad.checked == "withheld"
    fake.script = [(200, _events("sizes"), 0), (200, _events("shape[0]"), 0)]
    assert engine.complete("n = frame.", "", mode="line", allowed_names=["shape", "size"]).wait().text == ""
    assert engine.complete("n = frame.", "", mode="line", allowed_names=["shape", "size"]).wait().text == "shape[0]"
