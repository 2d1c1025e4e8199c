"""The HTTP edge of the remote backend: JSON requests and server-sent-event streams to an
OpenAI-compatible server, on httpx. It owns connecting (retries, back-off), timeouts, reading SSE,
cancelling a stream, and wording every failure as a one-line `ServerError` that names the server.

Retries: only the connection phase is retried (refused, reset, DNS, connect timeout, and 502/503/504,
which proxies and llama.cpp send while a model loads), with exponential back-off. Once a stream has
delivered data it is never retried: the caller would see text twice. A stream that breaks then is a
`ServerError` for that request; the next request connects afresh.

Timeouts: `connect_timeout` to open a connection (TLS included); `read_timeout` is the longest silence
tolerated, before the answer starts (a loaded server queues us) and between events.

What comes back is read within limits and checked (replies.py): too large, a web page, not JSON, an
event that is not a JSON object, a body cut short, a silence past the read timeout, each is a
`ServerError` line that says so. The API key (endpoint.py) is scrubbed from every error raised here.

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

import functools
import json
import queue
import socket
import ssl
import struct
import threading
import time
from typing import Any, Iterator

import httpx

from .endpoint import Endpoint, ServerError, ServerUnavailable, safe_url
from .replies import (ERROR_BODY_LIMIT, JSON_LIMIT, NOT_JSON, SSE_LINE_LIMIT, STREAM_LIMIT, LineTooLong,
                      describe, error_message, is_html, lines, loads, message_of, one_line, read_limited,
                      snippet, web_page)

POLL_S = 0.05  # how often a waiting stream looks at its cancel token (each look costs CPU)
RETRY_STATUSES = (502, 503, 504)  # the server (or a proxy before it) is starting or overloaded
_SSE_FIELDS = ("data", "event", "id", "retry", "error")


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
    delay = endpoint.backoff
    for attempt in range(endpoint.retries + 1):
        client = _client(endpoint, patience)
        try:
            request = client.build_request(method, endpoint.origin + path, content=payload, headers=headers,
                                           extensions={"trace": trace} if trace else None)
            response = client.send(request, stream=True)
        except (httpx.HTTPError, httpx.InvalidURL, OSError, UnicodeError) as e:
            client.close()
            if stop is not None and stop.is_set():
                raise _Cancelled() from None
            if isinstance(e, (httpx.ReadTimeout, httpx.WriteTimeout)):
                # Connected but no answer in time: the server is up and stuck; retrying only piles on.
                raise ServerError(f"{endpoint.where(path)} did not answer within {patience:g} s (the read "
                                  f"timeout): is the server stuck or overloaded?") from None
            problem = _describe(e)
        else:
            status = response.status_code
            if status < 300:
                return client, response
            message = error_message(response)
            client.close()
            if 300 <= status < 400:
                raise ServerError(f"{endpoint.display} answered with a redirect (HTTP {status}) to "
                                  f"{safe_url(response.headers.get('location', '?'))}: use that URL", status)
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


def request_json(endpoint: Endpoint, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
    """One JSON request, its JSON answer (retrying connection failures); any failure is a ServerError."""
    try:
        return _request_json(endpoint, method, path, body, timeout)
    except ServerError as e:
        raise endpoint.scrubbed(e) from None


def _request_json(endpoint: Endpoint, method: str, path: str, body: Any, timeout: float | None) -> Any:
    where = endpoint.where(path)
    client, response = _open(endpoint, method, path, body, stream=False, timeout=timeout)
    try:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > JSON_LIMIT:
            raise ServerError(f"{where} answered with {int(declared) / 2**20:.0f} MB: more than the "
                              f"{JSON_LIMIT // 2**20} MB this client reads for one answer, refused")
        raw, more = read_limited(response, JSON_LIMIT)
    except httpx.TimeoutException:
        raise ServerError(f"{where} stopped in the middle of its answer: nothing for "
                          f"{timeout or endpoint.read_timeout:g} s") from None
    except httpx.HTTPError as e:
        raise ServerError(f"{where} broke off its answer: {_describe(e)}") from None
    finally:
        client.close()
    if more:
        raise ServerError(f"{where} answered with more than the {JSON_LIMIT // 2**20} MB this client reads for "
                          f"one answer: refused")
    if is_html(response.headers.get("content-type", ""), raw[:64]):
        raise web_page(endpoint, path, raw, "JSON")
    data = loads(raw)
    if data is NOT_JSON:
        raise ServerError(f"{where} answered with something that is not JSON: {snippet(raw)}")
    return data


def stream_events(endpoint: Endpoint, path: str, body: Any, cancel=None) -> Iterator[dict]:
    """POST `body` and yield the JSON object of each server-sent event until `data: [DONE]`.

    Ends quietly (without [DONE]) when `cancel` is set, having closed the connection. Raises
    ServerUnavailable when no connection can be made, ServerError for an error answer, an error event,
    an answer that is not an event stream of JSON objects, a stream that breaks off, stays silent
    longer than the read timeout, or goes over the limits.
    """
    reader = _EventReader(endpoint, path, body)
    try:
        yield from reader.events(cancel)
    except ServerError as e:
        raise endpoint.scrubbed(e) from None
    finally:
        reader.close()


class _EventReader:
    """Opens and reads one SSE response on a helper thread (blocking calls), while the caller polls its
    cancel token. `close` shuts down the socket (known from the moment it connects), which wakes the
    thread wherever it blocks: connecting, waiting for the answer, reading; a back-off wakes on `_stop`."""

    def __init__(self, endpoint: Endpoint, path: str, body: Any):
        self._endpoint, self._path = endpoint, path
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
            self._read(path, response)
        except _Cancelled:
            pass  # the caller has left
        except Exception as e:  # noqa: BLE001 - handed to the caller, who decides what it means
            self._queue.put(("error" if client is not None else "failed", e))
        finally:
            with self._lock:
                self._socket = None  # from here on `close` leaves the socket alone
            if client is not None:
                client.close()

    def _read(self, path: str, response: httpx.Response) -> None:
        endpoint, where = self._endpoint, self._endpoint.where(path)
        kind = response.headers.get("content-type", "").lower()
        if "html" in kind or "json" in kind:  # not a stream: a proxy's page, or a server that ignored `stream`
            raw, _ = read_limited(response, ERROR_BODY_LIMIT)
            if is_html(kind, raw[:64]):
                raise web_page(endpoint, path, raw, "an event stream")
            data = loads(raw)
            if data is NOT_JSON:
                raise ServerError(f"{where} answered with {kind.split(';')[0]} that is not JSON, not the event "
                                  f"stream asked for: {snippet(raw)}")
            message = message_of(data)
            if message:
                raise ServerError(f"{where} reported an error: {one_line(message, 500)}")
            raise ServerError(f"{where} answered with one JSON reply ({describe(data)}), not the event stream "
                              f"asked for (stream: true)")
        data: list[str] = []
        size, junk, received = 0, "", 0
        chunks = response.iter_bytes()
        try:
            for line in lines(chunks):
                received += len(line) + 1
                if received > STREAM_LIMIT:
                    raise ServerError(f"{where} sent more than {STREAM_LIMIT // 2**20} MB in one answer: refused")
                text = line.decode("utf-8", "replace")
                if not text:  # a blank line ends an event
                    if data:
                        self._queue.put(("data", "\n".join(data)))
                        data, size = [], 0
                elif not text.startswith(":"):  # a comment: servers send these as keep-alive pings
                    field, _, value = text.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "data":
                        data.append(value)
                        size += len(value)
                        if size > SSE_LINE_LIMIT:
                            raise LineTooLong()
                    elif field == "error":  # llama.cpp's server words some failures so
                        self._queue.put(("error-line", value))
                    elif field not in _SSE_FIELDS and not junk:
                        if text.lstrip().startswith("<"):
                            raise web_page(endpoint, path, line, "an event stream")
                        junk = text
        except LineTooLong:
            raise ServerError(f"{where} sent an event longer than {SSE_LINE_LIMIT // 2**20} MB: refused "
                              f"(is it an OpenAI-compatible server?)") from None
        if data:  # the last event, when the stream ended without its blank line
            self._queue.put(("data", "\n".join(data)))
        self._queue.put(("eof", junk))

    def events(self, cancel) -> Iterator[dict]:
        endpoint = self._endpoint
        where = endpoint.where(self._path)
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
                also = f"; it also sent lines that are not server-sent events: {snippet(value)}" if value else ""
                raise ServerError(f"{endpoint.display} closed the stream before it was finished "
                                  f"(did the server stop?){also}")
            if kind == "error":
                if isinstance(value, httpx.TimeoutException):
                    raise ServerError(f"{endpoint.display} sent nothing for {endpoint.read_timeout:g} s "
                                      f"in the middle of an answer")
                if isinstance(value, ServerError):
                    raise value
                raise ServerError(f"the connection to {endpoint.display} broke in the middle of an answer "
                                  f"({_describe(value)})")
            if kind == "error-line":
                event = loads(value)
                message = (message_of(event) if event is not NOT_JSON else "") or value
                raise ServerError(f"{endpoint.display} reported an error mid-stream: {one_line(message, 500)}")
            if value.strip() == "[DONE]":
                self._done = True
                return
            event = loads(value)
            if event is NOT_JSON:
                raise ServerError(f"{where} sent an event that is not JSON: {snippet(value)}")
            if not isinstance(event, dict):
                raise ServerError(f"{where} sent an event that is not a JSON object but {describe(event)}: "
                                  f"{snippet(value)}")
            message = message_of(event) if "error" in event else ""
            if message:
                raise ServerError(f"{endpoint.display} reported an error mid-stream: {one_line(message, 500)}")
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


__all__ = ["Endpoint", "ServerError", "ServerUnavailable", "describe", "request_json", "stream_events"]
