"""Where the server is, and the errors that name it: `Endpoint` (URL, timeouts, retries, the API key and
the rules for sending it), `ServerError` and `ServerUnavailable`.

The API key is sent only as `Authorization: Bearer ...`, and never over plain http:// to a host other
than loopback (127.0.0.0/8, ::1, localhost) unless `allow_insecure_http` says so: the refusal says
why and how to allow it. It is left out of reprs, and `scrub` takes it out of any message (a server
may quote the key it refused); transport.py scrubs every error it raises.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import urllib.parse

from ..errors import CodeGemmaError, SettingsError


class ServerError(CodeGemmaError):
    """The server answered with an error, or broke off a stream. `status` is the HTTP status (0: none)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class ServerUnavailable(ServerError):
    """No connection could be made (after the retries): the server is down or the URL is wrong."""


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: traffic that never leaves this machine."""
    host = host.lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where the server is and how patiently to talk to it."""

    url: str  # the server's base URL, with or without the trailing /v1
    api_key: str | None = dataclasses.field(default=None, repr=False)  # sent as `Authorization: Bearer ...`
    connect_timeout: float = 5.0  # seconds to open a connection
    read_timeout: float = 120.0  # the longest silence tolerated while waiting for data (a loaded server queues)
    retries: int = 3  # further attempts after a failed connection
    backoff: float = 0.5  # seconds before the first retry; doubled each time
    allow_insecure_http: bool = False  # send the key over plain http:// to a host that is not loopback

    def __post_init__(self) -> None:
        try:
            parts = urllib.parse.urlsplit(self.url)
            valid = parts.port is None or parts.port > 0  # reading the port checks it
        except ValueError:
            parts, valid = urllib.parse.urlsplit(""), False
        if not valid or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ServerError(f"server URL must look like http://host:port or https://host, got {safe_url(self.url)!r}")
        key = (self.api_key or "").strip() or None  # a key file's trailing newline is not part of the key
        if key is not None and not all("\x21" <= c <= "\x7e" for c in key):
            raise SettingsError("the API key has characters an HTTP header cannot carry (a space, a line break, "
                                "a non-ASCII letter): check the environment variable it comes from")
        object.__setattr__(self, "api_key", key)
        if key and parts.scheme == "http" and not is_loopback(parts.hostname) and not self.allow_insecure_http:
            raise SettingsError(
                f"refusing to send the API key over plain http:// to {parts.hostname}: anyone on the network "
                f"between could read it and use the server. Use an https:// URL, or, on a network you trust, "
                f"allow it with `%codegemma set allow_insecure_http=True` (CodeGemma.allow_insecure_http; "
                f"CODEGEMMA_ALLOW_INSECURE_HTTP=1 in the environment)")

    def __repr__(self) -> str:  # never the key, nor credentials written into the URL
        return (f"Endpoint(url={self.display!r}, api_key={'<set>' if self.api_key else None}, "
                f"connect_timeout={self.connect_timeout}, read_timeout={self.read_timeout}, "
                f"retries={self.retries}, backoff={self.backoff}, allow_insecure_http={self.allow_insecure_http})")

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

    def where(self, path: str) -> str:
        """A request path as a URL to show (no credentials): where something went wrong."""
        p = self._parts
        return f"{p.scheme}://{p.hostname}{':' + str(p.port) if p.port else ''}{path}"

    @property
    def origin(self) -> str:
        """scheme://host[:port] that requests go to (credentials in the URL are never sent or shown)."""
        p = self._parts
        return f"{p.scheme}://{p.netloc.rpartition('@')[2]}"

    def headers(self, stream: bool = False) -> dict[str, str]:
        # identity: a compressing proxy would hold tokens back, and a compressed answer could unpack to
        # far more than the limits below count
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json",
                   "Accept-Encoding": "identity"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def scrub(self, text: str) -> str:
        """`text` without the API key (a server may quote the key it refused)."""
        return text.replace(self.api_key, "<API key>") if self.api_key else text

    def scrubbed(self, error: ServerError) -> ServerError:
        message = self.scrub(str(error))
        if message == str(error):
            return error
        clean = type(error)(message, error.status)
        clean.__traceback__ = error.__traceback__
        return clean


def safe_url(url: str) -> str:
    try:
        p = urllib.parse.urlsplit(url)
    except ValueError:
        return "(an unreadable URL)"
    return f"{p.scheme}://{p.netloc.rpartition('@')[2]}{p.path}" if p.scheme else p.path
