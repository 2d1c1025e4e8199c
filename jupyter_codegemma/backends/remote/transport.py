"""A small HTTP client for OpenAI-compatible servers: JSON requests and server-sent-event streams.

Standard library only (http.client), so a thin-client kernel needs nothing beyond this package.

Retries: only the connection phase is retried (refused, reset, DNS, connect timeout, and 502/503/504,
which proxies and llama.cpp send while a model loads), with exponential back-off. Once a stream has
delivered data it is never retried: the caller would see text twice. A stream that breaks then is a
`ServerError` for that request; the next request connects afresh.

Cancellation: the events of a stream are read on a helper thread; the caller polls its cancel token
between events and, when it is set, shuts the socket down. The server sees the client disconnect and
stops generating (llama.cpp, vLLM and Ollama all abort a request whose client is gone).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import queue
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Any, Iterator

from ..errors import CodeGemmaError

POLL_S = 0.05  # how often a waiting stream looks at its cancel token
RETRY_STATUSES = (502, 503, 504)  # the server (or a proxy before it) is starting or overloaded


class ServerError(CodeGemmaError):
    """The server answered with an error, or broke off a stream. `status` is the HTTP status (0: none)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class ServerUnavailable(ServerError):
    """No connection could be made (after the retries): the server is down or the URL is wrong."""


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where the server is and how patiently to talk to it."""

    url: str  # the server's base URL, with or without the trailing /v1
    api_key: str | None = None  # sent as `Authorization: Bearer ...`; never logged or shown
    connect_timeout: float = 5.0  # seconds to open a connection
    read_timeout: float = 120.0  # the longest silence tolerated while waiting for data (a loaded server queues)
    retries: int = 3  # further attempts after a failed connection
    backoff: float = 0.5  # seconds before the first retry; doubled each time

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ServerError(f"server URL must look like http://host:port or https://host, got {self.url!r}")

    @property
    def _parts(self) -> urllib.parse.SplitResult:
        return urllib.parse.urlsplit(self.url)

    @property
    def root(self) -> str:
        """The path prefix of the server (a deployment may serve it under /some/prefix), no trailing /v1."""
        path = self._parts.path.rstrip("/")
        return path[:-3] if path.endswith("/v1") else path

    def api(self, path: str) -> str:
        """The request path of an OpenAI-compatible route, e.g. api("/completions") -> /v1/completions."""
        return f"{self.root}/v1{path}"

    @property
    def display(self) -> str:
        """The URL without credentials or query, to show to people."""
        p = self._parts
        return f"{p.scheme}://{p.hostname}{':' + str(p.port) if p.port else ''}{p.path.rstrip('/')}"

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        p = self._parts
        if p.scheme == "https":
            return http.client.HTTPSConnection(p.hostname, p.port, timeout=timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(p.hostname, p.port, timeout=timeout)

    def headers(self, stream: bool = False) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


def _open(endpoint: Endpoint, method: str, path: str, body: Any, *, stream: bool, cancel=None,
          timeout: float | None = None) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Send a request and read the status line and headers, retrying connection failures."""
    payload = None if body is None else json.dumps(body).encode()
    delay = endpoint.backoff
    for attempt in range(endpoint.retries + 1):
        conn = endpoint.connect(endpoint.connect_timeout)
        connected = False
        try:
            conn.connect()
            connected = True
            # Connected: from here on the patience is the read timeout (the server may queue us).
            conn.sock.settimeout(timeout or endpoint.read_timeout)
            conn.request(method, path, body=payload, headers=endpoint.headers(stream))
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            problem = _describe(e)
            if isinstance(e, socket.timeout) and connected:
                # Connected but no answer in time: the server is up and stuck; retrying only piles on.
                raise ServerError(f"{endpoint.display} did not answer within {timeout or endpoint.read_timeout:g} s")
        else:
            if response.status in RETRY_STATUSES:
                problem = f"HTTP {response.status}: {_error_message(response)}"
                conn.close()
            elif response.status >= 400:
                message = _error_message(response)
                conn.close()
                if response.status in (401, 403):
                    message += " (check the API key: see CodeGemma.api_key_env)"
                raise ServerError(f"{endpoint.display} refused the request: HTTP {response.status}: {message}",
                                  response.status)
            else:
                return conn, response
        if attempt == endpoint.retries:
            break
        if _sleep_or_cancel(delay, cancel):
            raise _Cancelled()
        delay *= 2
    raise ServerUnavailable(f"cannot reach the server at {endpoint.display} ({problem}, "
                            f"{endpoint.retries + 1} attempts): is it running? (%codegemma use local goes "
                            f"back to the model in this kernel)")


class _Cancelled(Exception):
    """Raised inside this module when a cancel token is set while waiting; turned into a quiet end."""


def _sleep_or_cancel(seconds: float, cancel) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cancel is not None and cancel.is_set():
            return True
        time.sleep(min(POLL_S, max(deadline - time.monotonic(), 0)))
    return False


def _describe(e: BaseException) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return f"unknown host: {e.strerror or e}"
    if isinstance(e, socket.timeout):
        return "connection timed out"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _error_message(response: http.client.HTTPResponse) -> str:
    """The server's own words: OpenAI-style {"error": {"message": ...}}, FastAPI's {"detail": ...}, or text."""
    try:
        raw = response.read(64_000).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return response.reason or "no details"
    try:
        data = json.loads(raw)
    except ValueError:
        return raw.strip()[:500] or response.reason or "no details"
    return _message_of(data) or raw.strip()[:500]


def _message_of(data: Any) -> str:
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)
        if isinstance(error, str):
            return error
        detail = data.get("detail") or data.get("message")
        if detail:
            return detail if isinstance(detail, str) else json.dumps(detail)[:500]
    return ""


def request_json(endpoint: Endpoint, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
    """One JSON request, its JSON answer (retrying connection failures)."""
    conn, response = _open(endpoint, method, path, body, stream=False, timeout=timeout)
    try:
        raw = response.read()
    except (OSError, http.client.HTTPException) as e:
        raise ServerError(f"{endpoint.display} broke off its answer to {path}: {_describe(e)}") from None
    finally:
        conn.close()
    try:
        return json.loads(raw)
    except ValueError:
        raise ServerError(f"{endpoint.display}{path} answered with something that is not JSON: "
                          f"{raw[:200]!r}") from None


def stream_events(endpoint: Endpoint, path: str, body: Any, cancel=None) -> Iterator[dict]:
    """POST `body` and yield the JSON object of each server-sent event until `data: [DONE]`.

    Ends quietly (without [DONE]) when `cancel` is set, having closed the connection. Raises
    ServerUnavailable when no connection can be made, ServerError for an error answer, an error event,
    a stream that breaks off or stays silent longer than the read timeout.
    """
    reader = _EventReader(endpoint, path, body, cancel)
    try:
        yield from reader.events(cancel)
    finally:
        reader.close()


class _EventReader:
    """Opens and reads one SSE response on a helper thread (blocking calls), while the caller polls its
    cancel token: a cancel is seen within POLL_S even while connecting, backing off or waiting for a
    server that has queued the request."""

    def __init__(self, endpoint: Endpoint, path: str, body: Any, cancel):
        self._endpoint = endpoint
        self._conn: http.client.HTTPConnection | None = None
        self._response: http.client.HTTPResponse | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(path, body, cancel), name="codegemma-sse",
                                        daemon=True)
        self._thread.start()

    def _run(self, path: str, body: Any, cancel) -> None:
        try:
            conn, response = _open(self._endpoint, "POST", path, body, stream=True, cancel=cancel)
        except _Cancelled:
            return  # the caller has seen the cancel itself
        except Exception as e:  # noqa: BLE001 - handed to the caller
            self._queue.put(("failed", e))
            return
        with self._lock:
            if self._closed:  # the caller left while we were connecting
                conn.close()
                return
            self._conn, self._response = conn, response
        self._read(response)

    def _read(self, response: http.client.HTTPResponse) -> None:
        data: list[str] = []
        try:
            while True:
                line = response.readline()
                if not line:
                    self._queue.put(("eof", None))
                    return
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if not text:  # a blank line ends an event
                    if data:
                        self._queue.put(("data", "\n".join(data)))
                        data = []
                elif text.startswith(":"):  # a comment: servers send these as keep-alive pings
                    self._queue.put(("ping", None))
                else:
                    field, _, value = text.partition(":")
                    if field == "data":
                        data.append(value[1:] if value.startswith(" ") else value)
        except Exception as e:  # noqa: BLE001 - handed to the caller, who decides what it means
            self._queue.put(("error", e))

    def events(self, cancel) -> Iterator[dict]:
        endpoint = self._endpoint
        last = time.monotonic()
        while True:
            if cancel is not None and cancel.is_set():
                return
            try:
                kind, value = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                if time.monotonic() - last > endpoint.read_timeout:
                    raise self._silent() from None
                continue
            last = time.monotonic()
            if kind == "ping":
                continue
            if kind == "failed":  # no stream at all: the server is down, or refused (already worded)
                raise value
            if kind == "eof":
                raise ServerError(f"{endpoint.display} closed the stream before it was finished "
                                  f"(did the server stop?)")
            if kind == "error":
                if self._closed:
                    return
                if isinstance(value, socket.timeout):  # the socket's own timeout beat the watch above
                    raise self._silent()
                raise ServerError(f"the connection to {endpoint.display} broke in the middle of an answer "
                                  f"({_describe(value)})")
            if value.strip() == "[DONE]":
                return
            try:
                event = json.loads(value)
            except ValueError:
                raise ServerError(f"{endpoint.display} sent an event that is not JSON: {value[:200]!r}") from None
            message = _message_of(event) if isinstance(event, dict) and "error" in event else ""
            if message or not isinstance(event, dict):
                raise ServerError(f"{endpoint.display} reported an error mid-stream: "
                                  f"{message or repr(event)[:200]}")
            yield event

    def _silent(self) -> ServerError:
        return ServerError(f"{self._endpoint.display} sent nothing for {self._endpoint.read_timeout:g} s "
                           f"in the middle of an answer")

    def close(self) -> None:
        """Drop the connection (the server stops generating for it); unblocks the reader thread."""
        with self._lock:
            self._closed = True
            conn, response = self._conn, self._response
        if conn is None:
            return  # still connecting: the thread closes what it gets
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        conn.close()
        response.close()
