"""A loopback OpenAI-compatible server whose every route a test can replace, to misbehave on purpose
(tests/test_remote_replies.py, tests/test_remote_keys.py).

    with ScriptedServer(model="codegemma-7b-it") as server:
        server.routes["/v1/chat/completions"] = lambda h: h.sse([{"choices": {"text": 1}}])
        ...

By default it is a well-behaved server: GET /v1/models lists `model`; POST /v1/completions and
/v1/chat/completions stream `answer` (a few characters an event, then a finish_reason, then [DONE]);
it has no tokenize route (404, as Ollama). A route is a function of the request handler, which has
`json`, `raw`, `sse`, `cut` and `body`. Every request is recorded in `requests` (path, headers, body).
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake"

    def log_message(self, *args):
        pass

    @property
    def fake(self) -> "ScriptedServer":
        return self.server.fake

    # --- answers ---------------------------------------------------------------------------------

    def json(self, value, status: int = 200) -> None:
        self.raw(json.dumps(value).encode(), "application/json", status)

    def raw(self, data: bytes, content_type: str = "application/json", status: int = 200,
            length: int | None = None) -> None:
        """`data` as the body; `length` declares another Content-Length (a body cut short)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.fake.disconnected.set()
        if length is not None and length > len(data):
            self.cut()

    def chunked(self, chunks, content_type: str = "text/event-stream", delay: float = 0.0) -> None:
        """A body of unknown length, chunk by chunk (bytes or text); None in `chunks` cuts the connection."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in chunks:
                if chunk is None:
                    self.cut()
                    return
                data = chunk.encode() if isinstance(chunk, str) else chunk
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                if delay:
                    time.sleep(delay)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.fake.disconnected.set()

    def sse(self, events, delay: float = 0.0, done: bool = True) -> None:
        """Each of `events` as one server-sent event (dicts as JSON, strings as they are; None cuts the
        connection), then [DONE]."""
        lines = [None if e is None else f"data: {json.dumps(e) if not isinstance(e, str) else e}\n\n" for e in events]
        self.chunked(lines + (["data: [DONE]\n\n"] if done else []), delay=delay)

    def cut(self) -> None:
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True

    # --- requests ---------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = json.loads(self.rfile.read(length)) if length else None
        path = self.path.split("?")[0]
        self.fake.requests.append({"method": method, "path": path, "headers": dict(self.headers),
                                   "body": self.body})
        route = self.fake.routes.get(path)
        if route is None:
            self.json({"detail": "Not Found"}, 404)
        else:
            route(self)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")


def completion_events(answer: str, piece: int = 4) -> list[dict]:
    pieces = [answer[i:i + piece] for i in range(0, len(answer), piece)]
    return ([{"choices": [{"index": 0, "text": p, "finish_reason": None}]} for p in pieces]
            + [{"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}])


def chat_events(answer: str, piece: int = 4) -> list[dict]:
    pieces = [answer[i:i + piece] for i in range(0, len(answer), piece)]
    return ([{"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}]
            + [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
            + [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}])


class ScriptedServer:
    def __init__(self, model: str = "gemma-3-270m", answer: str = "ok"):
        self.model, self.answer = model, answer
        self.requests: list[dict] = []
        self.disconnected = threading.Event()
        self.routes = self.default_routes()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def default_routes(self) -> dict:
        return {
            "/v1/models": lambda h: h.json({"object": "list", "data": [{"id": self.model, "object": "model"}]}),
            "/v1/completions": lambda h: h.sse(completion_events(self.answer)),
            "/v1/chat/completions": lambda h: h.sse(chat_events(self.answer)),
        }

    def reset(self) -> None:
        """Back to a well-behaved server."""
        self.routes = self.default_routes()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "ScriptedServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
