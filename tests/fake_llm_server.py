"""A loopback OpenAI-compatible completions server whose answer a test chooses: for the browser test of
untrusted model output (labextension/ui-tests/tests/untrustedOutput.spec.ts, started by
tests/test_labextension.py).

It speaks what the remote backend (jupyter_codegemma/backends/remote/) asks of a server serving a base
model:

    GET  /v1/models          a base model first ("gemma-3-270m": chat and explain prompts are plain text
                             for /v1/completions), and an instruction model ("gemma-3-270m-it": its chats,
                             explain included, go to /v1/chat/completions)
    POST /v1/completions     `stream: true`: the answer as server-sent events, a few characters an
                             event, then one with finish_reason "stop", then `data: [DONE]`
    POST /v1/chat/completions  the same answer as chat events (`delta.content`)
    POST /tokenize           {"tokens": [...]}: one token a character (<bos> = 2 first when asked)
    POST /detokenize         {"content": ..., "prompt": ...}

and, for the test itself (not part of any real server's API):

    POST /test/answer        {"text": ...}: what every later completion answers
    GET  /test/requests      the generation requests received so far ({"route", "model", "prompt" or
                             "messages", "max_tokens"})
"""

from __future__ import annotations

import http.server
import json
import threading
import time

from http_fakes import QuietHandler

BASE_MODEL = "gemma-3-270m"  # listed first: what `%codegemma use URL` picks
INSTRUCTION_MODEL = "gemma-3-270m-it"
BOS = 2


class FakeLLMServer:
    def __init__(self, piece_chars: int = 16, delay: float = 0.02):
        self.answer = "ok"
        self.completions: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):

            def _body(self) -> dict:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def do_GET(self):
                path = self.path.split("?")[0].rstrip("/")
                if path == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": name, "object": "model"}
                                                                for name in (BASE_MODEL, INSTRUCTION_MODEL)]})
                elif path == "/test/requests":
                    with server._lock:
                        self._json(200, list(server.completions))
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                path = self.path.split("?")[0].rstrip("/")
                body = self._body()
                if path == "/test/answer":
                    with server._lock:
                        server.answer = str(body["text"])
                    self._json(200, {"ok": True})
                elif path == "/tokenize":
                    text = body.get("content", body.get("prompt", ""))
                    special = body.get("add_special", body.get("add_special_tokens", False))
                    self._json(200, {"tokens": ([BOS] if special else []) + [ord(c) for c in text]})
                elif path == "/detokenize":
                    text = "".join(chr(t) for t in body.get("tokens", []) if t != BOS)
                    self._json(200, {"content": text, "prompt": text})
                elif path == "/v1/completions":
                    self._stream(body, "completions")
                elif path == "/v1/chat/completions":
                    self._stream(body, "chat")
                else:  # /extras/tokenize (llama-cpp-python's) and anything else: not this server's
                    self._json(404, {"error": {"message": f"no route {self.path}"}})

            def _stream(self, body: dict, route: str) -> None:
                asked = {"prompt": body.get("prompt", "")} if route == "completions" else \
                    {"messages": body.get("messages", [])}
                with server._lock:
                    server.completions.append({"route": route, "model": body.get("model"), **asked,
                                               "max_tokens": body.get("max_tokens")})
                    answer = server.answer
                if body.get("max_tokens") == 1:  # the warm-up's one token
                    answer = answer[:1]
                pieces = [answer[i:i + piece_chars] for i in range(0, len(answer), piece_chars)]
                if route == "completions":
                    events = [{"choices": [{"index": 0, "text": p, "finish_reason": None}]} for p in pieces]
                    events.append({"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]})
                else:
                    events = [{"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}]
                    events += [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
                               for p in pieces]
                    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for event in [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]:
                        data = event.encode()
                        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                        self.wfile.flush()
                        time.sleep(delay)
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass  # the client closed the stream (it had what it wanted)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fake-llm", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
