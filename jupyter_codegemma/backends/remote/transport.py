"""The HTTP edge of the remote backend: JSON requests and server-sent-event streams to an
OpenAI-compatible server, on httpx. It owns connecting (retries, back-off), timeouts, reading SSE,
cancelling a stream, and wording every failure as a one-line `ServerError` that names the server.

Retries: only the connection phase is retried (refused, reset, DNS, connect timeout, and 502/503/504,
which proxies and llama.cpp send while a model loads), with exponential back-off. Once a stream has
delivered data it is never retried: the caller would see text twice. A stream that breaks then is a
`ServerError` for that request; the next request connects afresh.

Timeouts: `connect_timeout` to open a connection (TLS included); `read_timeout` is the longest silence
tolerated, before the answer starts (a loaded server queues us) and between events.

Cancellation: a stream is opened and read on a helper thread, while the caller polls its cancel token
(anything with `is_set()`) every POLL_S. On cancel the caller shuts the socket down (with a reset),
even before the server has answered (the socket is known from the moment it connects): the server
sees the client disconnect and stops generating, or drops the queued request (llama.cpp, vLLM and
Ollama all do). bench/cancel_latency.py measures how soon.

Each request has its own connection: a cancelled stream's socket is shut down from another thread,
which must never hit a connection a pool has meanwhile handed to someone else. Proxies come from the
usual environment variables (HTTP(S)_PROXY, NO_PROXY); certificates are the system's (ssl defaults).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import queue
import re
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from typing import Any, Iterator

import httpx

from ..errors import CodeGemmaError

POLL_S = 0.05  # how often a waiting stream looks at its cancel token (each look costs CPU)
RETRY_STATUSES = (502, 503, 504)  # the server (or a proxy before it) is starting or overloaded
ERROR_BODY_LIMIT = 64_000  # bytes of an error answer read for its message
_EOL = re.compile(rb"\r\n|\r|\n")  # SSE line ends (not str.splitlines: U+2028 may sit inside JSON)


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

    @property
    def origin(self) -> str:
        """scheme://host[:port] that requests go to (credentials in the URL are never sent or shown)."""
        p = self._parts
        return f"{p.scheme}://{p.netloc.rpartition('@')[2]}"

    def headers(self, stream: bool = False) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


@functools.lru_cache(maxsize=None)
def _tls() -> ssl.SSLContext:
    """One TLS context for the process (loading the CA store costs tens of milliseconds a time)."""
    return ssl.create_default_context()


def _client(endpoint: Endpoint, read_timeout: float) -> httpx.Client:
    timeout = httpx.Timeout(read_timeout, connect=endpoint.connect_timeout)
    return httpx.Client(timeout=timeout, verify=_tls(), follow_redirects=False)


class _Cancelled(Exception):
    """Raised inside this module when a stream is closed while connecting; turned into a quiet end."""


def _open(endpoint: Endpoint, method: str, path: str, body: Any, *, stream: bool, timeout: float | None = None,
          stop: threading.Event | None = None, trace=None) -> tuple[httpx.Client, httpx.Response]:
    """Send a request and read the status line and headers, retrying connection failures. `stop` ends
    the attempts (as `_Cancelled`); `trace` is httpcore's trace hook, told of each new connection."""
    payload = None if body is None else json.dumps(body).encode()
    patience = timeout or endpoint.read_timeout
    headers = endpoint.headers(stream)
    if stream:
        headers["Accept-Encoding"] = "identity"  # a compressing proxy would hold tokens back
    delay = endpoint.backoff
    for attempt in range(endpoint.retries + 1):
        client = _client(endpoint, patience)
        try:
            request = client.build_request(method, endpoint.origin + path, content=payload, headers=headers,
                                           extensions={"trace": trace} if trace else None)
            response = client.send(request, stream=True)
        except httpx.HTTPError as e:
            client.close()
            if stop is not None and stop.is_set():
                raise _Cancelled() from None
            if isinstance(e, (httpx.ReadTimeout, httpx.WriteTimeout)):
                # Connected but no answer in time: the server is up and stuck; retrying only piles on.
                raise ServerError(f"{endpoint.display} did not answer within {patience:g} s") from None
            problem = _describe(e)
        else:
            status = response.status_code
            if status < 300:
                return client, response
            message = _error_message(response)
            client.close()
            if 300 <= status < 400:
                raise ServerError(f"{endpoint.display} answered with a redirect (HTTP {status}) to "
                                  f"{_safe_url(response.headers.get('location', '?'))}: use that URL", status)
            if status not in RETRY_STATUSES:
                if status in (401, 403):
                    message += " (check the API key: see CodeGemma.api_key_env)"
                raise ServerError(f"{endpoint.display} refused the request: HTTP {status}: {message}", status)
            problem = f"HTTP {status}: {message}"
        if attempt == endpoint.retries:
            break
        if stop is not None:
            if stop.wait(delay):
                raise _Cancelled()
        else:
            time.sleep(delay)
        delay *= 2
    raise ServerUnavailable(f"cannot reach the server at {endpoint.display} ({problem}, "
                            f"{endpoint.retries + 1} attempts): is it running? (%codegemma use local goes "
                            f"back to the model in this kernel)")


def _describe(e: BaseException) -> str:
    """A few words on a transport failure, from the OS error under httpx's (and httpcore's) wrapping."""
    if isinstance(e, httpx.ConnectTimeout):
        return "connection timed out"
    cause: BaseException | None = e
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, socket.gaierror):
        return f"unknown host: {cause.strerror or cause}"
    if isinstance(cause, TimeoutError):
        return "connection timed out"
    if cause is None and isinstance(e, httpx.RemoteProtocolError) and any(w in str(e) for w in ("closed", "disco")):
        return "the server closed the connection"  # before the end of its answer (or before answering)
    shown = cause or e
    return " ".join(f"{type(shown).__name__}: {shown}".split()) if str(shown) else type(shown).__name__


def _safe_url(url: str) -> str:
    p = urllib.parse.urlsplit(url)
    return f"{p.scheme}://{p.netloc.rpartition('@')[2]}{p.path}" if p.scheme else p.path


def _error_message(response: httpx.Response) -> str:
    """The server's own words: OpenAI-style {"error": {"message": ...}}, FastAPI's {"detail": ...}, or text."""
    raw = b""
    try:
        for chunk in response.iter_bytes():
            raw += chunk
            if len(raw) >= ERROR_BODY_LIMIT:
                break
    except httpx.HTTPError:
        if not raw:
            return response.reason_phrase or "no details"
    text = raw[:ERROR_BODY_LIMIT].decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:500] or response.reason_phrase or "no details"
    return " ".join((_message_of(data) or text).split())[:500]


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
    client, response = _open(endpoint, method, path, body, stream=False, timeout=timeout)
    try:
        raw = response.read()
    except httpx.HTTPError as e:
        raise ServerError(f"{endpoint.display} broke off its answer to {path}: {_describe(e)}") from None
    finally:
        client.close()
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
    reader = _EventReader(endpoint, path, body)
    try:
        yield from reader.events(cancel)
    finally:
        reader.close()


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Lines of a byte stream ended by CRLF, LF or CR (a CR at a chunk's end waits for a possible LF)."""
    pending = b""
    for chunk in chunks:
        text = pending + chunk
        held = text.endswith(b"\r")
        *lines, pending = _EOL.split(text[:-1] if held else text)
        if held:
            pending += b"\r"
        yield from lines
    if pending.rstrip(b"\r"):
        yield pending.rstrip(b"\r")


class _EventReader:
    """Opens and reads one SSE response on a helper thread (blocking calls), while the caller polls its
    cancel token. `close` shuts down the socket (known from the moment it connects), which wakes the
    thread wherever it blocks: connecting, waiting for the answer, reading; a back-off wakes on `_stop`."""

    def __init__(self, endpoint: Endpoint, path: str, body: Any):
        self._endpoint = endpoint
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socket: socket.socket | None = None  # the connection's socket, until the thread is done with it
        self._done = False  # [DONE] arrived
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(path, body), name="codegemma-sse", daemon=True)
        self._thread.start()

    def _trace(self, event: str, info: dict) -> None:
        """httpcore's hook: a TCP connection (then its TLS layer) exists; remember its socket."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            sock = info["return_value"].get_extra_info("socket")
            with self._lock:
                self._socket = sock
                if self._stop.is_set():  # the caller left while we were connecting
                    _shut(sock)

    def _run(self, path: str, body: Any) -> None:
        client = None
        try:
            client, response = _open(self._endpoint, "POST", path, body, stream=True, stop=self._stop,
                                     trace=self._trace)
            self._read(response)
        except _Cancelled:
            pass  # the caller has left
        except Exception as e:  # noqa: BLE001 - handed to the caller, who decides what it means
            self._queue.put(("error" if client is not None else "failed", e))
        finally:
            with self._lock:
                self._socket = None  # from here on `close` leaves the socket alone
            if client is not None:
                client.close()

    def _read(self, response: httpx.Response) -> None:
        data: list[str] = []
        for line in _lines(response.iter_bytes()):
            text = line.decode("utf-8", "replace")
            if not text:  # a blank line ends an event
                if data:
                    self._queue.put(("data", "\n".join(data)))
                    data = []
            elif not text.startswith(":"):  # a comment: servers send these as keep-alive pings
                field, _, value = text.partition(":")
                if field == "data":
                    data.append(value[1:] if value.startswith(" ") else value)
        self._queue.put(("eof", None))

    def events(self, cancel) -> Iterator[dict]:
        endpoint = self._endpoint
        while True:
            if cancel is not None and cancel.is_set():
                return
            try:
                kind, value = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if kind == "failed":  # no stream at all: the server is down, or refused (already worded)
                raise value
            if kind == "eof":
                raise ServerError(f"{endpoint.display} closed the stream before it was finished "
                                  f"(did the server stop?)")
            if kind == "error":
                if isinstance(value, httpx.TimeoutException):
                    raise ServerError(f"{endpoint.display} sent nothing for {endpoint.read_timeout:g} s "
                                      f"in the middle of an answer")
                if isinstance(value, ServerError):
                    raise value
                raise ServerError(f"the connection to {endpoint.display} broke in the middle of an answer "
                                  f"({_describe(value)})")
            if value.strip() == "[DONE]":
                self._done = True
                return
            try:
                event = json.loads(value)
            except ValueError:
                raise ServerError(f"{endpoint.display} sent an event that is not JSON: {value[:200]!r}") from None
            message = _message_of(event) if isinstance(event, dict) and "error" in event else ""
            if message or not isinstance(event, dict):
                raise ServerError(f"{endpoint.display} reported an error mid-stream: "
                                  f"{' '.join((message or repr(event)[:200]).split())}")
            yield event

    def close(self) -> None:
        """Drop the connection and let the thread finish (not waited for while it is still connecting:
        it shuts down what it gets). Before [DONE] the drop is abortive (a reset): a server that only
        notices a gone client when a write fails notices at its next write, not the one after."""
        with self._lock:
            self._stop.set()
            shut = self._socket is not None and _shut(self._socket, abort=not self._done)
        if shut:
            self._thread.join(1.0)


def _shut(sock: socket.socket, abort: bool = True) -> bool:
    """Shut a socket down from another thread (its blocked calls return); False if it was closed."""
    try:
        if abort:  # close() then sends a reset rather than a FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
        return True
    except OSError:
        return False
