"""The request handler the loopback fake servers of the tests build on: HTTP/1.1, silent, JSON answers."""

from __future__ import annotations

import http.server
import json


class QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # the test output stays readable
        pass

    def _json(self, status: int, body) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
