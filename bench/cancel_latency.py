"""Cancel latency of the remote backend's transport: how soon a cancelled stream lets go.

    python bench/cancel_latency.py [--module PATH ...] [--runs 30] [--json results.json]

A loopback fake OpenAI-style server (stdlib http.server on a thread) answers every POST with a
server-sent-event stream, one event every 10 ms, forever. The client starts `stream_events` with a
cancel token on a consumer thread, and the token is set from another thread (as the kernel's comm
handler does) a few events in, at a random phase between two events. Measured from setting the token:

  (a) returned: until `stream_events` has returned to the caller (the consumer's loop ended);
  (b) server saw it: until the server's next socket write failed (it saw the client disconnect).

A second case, "queued": the server holds the answer back for 2 s (a loaded server with the request
in its queue, or a long prefill), watching the socket the way uvicorn/llama.cpp do; the token is set
200-250 ms in. (b) is then the time until the server sees the disconnect; a client that cannot drop a
request before its answer starts leaves the server to find out when it writes (about 1.8 s later).

Each --module is a transport.py file (e.g. the old one: `git show 49045d0:jupyter_codegemma/backends/
remote/transport.py > /tmp/transport_old.py`), imported inside the package so its relative imports
work; without --module the package's own is measured. Implementations alternate run by run, in one
process, so a busy shared machine weighs on them alike. Median and p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import http.server
import importlib.util
import json
import random
import select
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EVENT_EVERY_S = 0.01
QUEUE_HOLD_S = 2.0
QUEUED_CANCEL_AFTER_S = 0.2
EVENTS_BEFORE_CANCEL = 5


class FakeServer:
    """Streams `data: {...}` events every 10 ms until the client goes; `seen[run]` is when it noticed."""

    def __init__(self):
        self.seen: dict[str, float] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                run = body["run"]
                if body.get("queued"):
                    # Hold the answer back; a disconnect makes the socket readable (EOF or reset).
                    readable, _, _ = select.select([self.connection], [], [], QUEUE_HOLD_S)
                    if readable:
                        try:
                            gone = self.connection.recv(1, socket.MSG_PEEK) == b""
                        except OSError:
                            gone = True
                        if gone:
                            server.seen[run] = time.monotonic()
                            return
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    i = 0
                    while True:
                        event = {"choices": [{"text": f"tok{i} ", "index": 0, "finish_reason": None}]}
                        data = f"data: {json.dumps(event)}\n\n".encode()
                        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                        self.wfile.flush()
                        i += 1
                        time.sleep(EVENT_EVERY_S)
                except OSError:
                    server.seen[run] = time.monotonic()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_seen(self, run: str, timeout: float = 10.0) -> float | None:
        deadline = time.monotonic() + timeout
        while run not in self.seen and time.monotonic() < deadline:
            time.sleep(0.0005)
        return self.seen.get(run)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def load_transport(path: str | None, index: int):
    if path is None:
        from jupyter_codegemma.backends.remote import transport

        return transport
    name = f"jupyter_codegemma.backends.remote._bench_transport_{index}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def one_run(transport, server: FakeServer, run: str, queued: bool) -> tuple[float, float | None]:
    endpoint = transport.Endpoint(server.url, api_key="sk-bench", read_timeout=30)
    cancel = threading.Event()
    streaming = threading.Event()
    returned: list[float] = []
    errors: list[BaseException] = []

    def consume():
        try:
            for n, _ in enumerate(transport.stream_events(endpoint, "/v1/completions",
                                                          {"run": run, "queued": queued}, cancel), 1):
                if n == EVENTS_BEFORE_CANCEL:
                    streaming.set()
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            errors.append(e)
        returned.append(time.monotonic())

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    if queued:
        time.sleep(QUEUED_CANCEL_AFTER_S + random.uniform(0, 0.05))  # a random phase against any polling
    else:
        if not streaming.wait(10):
            raise RuntimeError(f"{run}: no events ({errors})")
        time.sleep(random.uniform(0, EVENT_EVERY_S))  # a random phase between two events
    cancelled_at = time.monotonic()
    cancel.set()
    consumer.join(10)
    if errors or not returned:
        raise RuntimeError(f"{run}: {errors or 'did not return'}")
    seen = server.wait_seen(run, timeout=QUEUE_HOLD_S + 5)
    return (returned[0] - cancelled_at) * 1e3, None if seen is None else (seen - cancelled_at) * 1e3


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"median_ms": None, "p95_ms": None, "n": 0}
    return {"median_ms": round(statistics.median(values), 2), "p95_ms": round(percentile(values, 0.95), 2),
            "max_ms": round(max(values), 2), "n": len(values)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", help="a transport.py to measure (repeatable)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--queued-runs", type=int, default=10, help="runs of the queued case (each holds ~2 s)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    paths = args.module or [None]
    transports = [(path or "package", load_transport(path, i)) for i, path in enumerate(paths)]
    server = FakeServer()
    results: dict = {}
    try:
        for case, runs in (("streaming", args.runs), ("queued", args.queued_runs)):
            samples = {name: ([], []) for name, _ in transports}
            for i in range(runs):
                for name, transport in (transports if i % 2 == 0 else transports[::-1]):
                    returned, seen = one_run(transport, server, f"{case}-{name}-{i}", case == "queued")
                    samples[name][0].append(returned)
                    samples[name][1].append(seen)
            for name, (returned, seen) in samples.items():
                results.setdefault(name, {})[case] = {"returned": summary(returned), "server_saw": summary(seen)}
    finally:
        server.close()
    for name, cases in results.items():
        print(f"{name}")
        for case, figures in cases.items():
            r, s = figures["returned"], figures["server_saw"]
            print(f"  {case:9s} (a) returned     median {r['median_ms']:8.2f} ms  p95 {r['p95_ms']:8.2f} ms"
                  f"  (n={r['n']})")
            print(f"  {'':9s} (b) server saw it median {s['median_ms']:8.2f} ms  p95 {s['p95_ms']:8.2f} ms"
                  f"  (n={s['n']})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
