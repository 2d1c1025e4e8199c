"""What comes back from the server, read within limits and checked before use.

A JSON answer over JSON_LIMIT, an SSE line (or one event's data) over SSE_LINE_LIMIT and a stream over
STREAM_LIMIT are refused as they arrive, never held whole. A web page where JSON or events were
expected (a proxy's error page, the URL of a web UI), text that is not JSON (or nested past what the
parser takes), are told apart and worded as one line; `describe` and `snippet` say what came instead.
The fields of a streamed answer's events are checked the same way (`first_choice`, `completion_text`,
`delta_text`): choices that are not a list, text that is not a string, is a ServerError naming the
field, never a KeyError or TypeError; a malformed `usage` (a report, not the answer) is ignored.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any, Iterator

import httpx

from ..base import GenerationResult
from .endpoint import Endpoint, ServerError

ERROR_BODY_LIMIT = 64_000  # bytes of an error answer read for its message
JSON_LIMIT = 8 * 2**20  # the largest JSON answer read (a model list, token ids): more is refused
SSE_LINE_LIMIT = 2**20  # the longest SSE line (and the data of one event); an event holds a token or so
STREAM_LIMIT = 16 * 2**20  # the most bytes of one streamed answer (4096 tokens are about 1.5 MB of events)
_EOL = re.compile(rb"\r\n|\r|\n")  # SSE line ends (not str.splitlines: U+2028 may sit inside JSON)


def one_line(text: str, limit: int = 200) -> str:
    """`text` on one line, cut to about `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " …"


def snippet(raw: bytes | str, limit: int = 120) -> str:
    """The start of an answer that is not what was expected, quoted on one line."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else raw
    return repr(one_line(text, limit))


def describe(value: Any) -> str:
    """A JSON value's shape in a few words (for messages on answers that are not what was expected)."""
    if isinstance(value, dict):
        keys = ", ".join(repr(k) for k in list(value)[:6]) + (", …" if len(value) > 6 else "")
        return f"an object with keys {keys}" if value else "an empty object"
    names = {list: "a list", str: "a string", bool: "true/false", int: "a number", float: "a number",
             type(None): "null"}
    return names.get(type(value), type(value).__name__)


HTML_START = (b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"<title", b"<h1", b"<center")


def is_html(content_type: str, head: bytes) -> bool:
    return "html" in content_type.lower() or head.lstrip()[:16].lower().startswith(HTML_START)


def page_title(raw: bytes) -> str:
    """A web page's title (or its first words), to say which page came back."""
    text = raw.decode("utf-8", "replace")
    match = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    words = match.group(1) if match else re.sub(r"<[^>]*>|<[^>]*$", " ", text)
    return one_line(html.unescape(words), 80) or "no title"


def web_page(endpoint: Endpoint, path: str, raw: bytes, expected: str) -> ServerError:
    return ServerError(f"{endpoint.where(path)} answered with a web page ({page_title(raw)!r}), not {expected}: "
                       f"is {endpoint.display} the address of the server's API (and not of a proxy or a web UI)?")


def read_limited(response: httpx.Response, limit: int) -> tuple[bytearray, bool]:
    """At most `limit` bytes of the body, and whether there was more (the rest is never read)."""
    raw = bytearray()
    for chunk in response.iter_bytes():
        if len(raw) + len(chunk) > limit:
            raw += chunk[:limit - len(raw)]
            return raw, True
        raw += chunk
    return raw, False


def error_message(response: httpx.Response) -> str:
    """The server's own words: OpenAI-style {"error": {"message": ...}}, FastAPI's {"detail": ...}, the
    title of an error page, or text."""
    try:
        raw, _ = read_limited(response, ERROR_BODY_LIMIT)
    except httpx.HTTPError:
        return response.reason_phrase or "no details"
    if is_html(response.headers.get("content-type", ""), raw[:64]):
        return f"a web page ({page_title(raw)!r})"
    text = raw.decode("utf-8", "replace")
    data = loads(text)
    if data is NOT_JSON:
        return one_line(text, 500) or response.reason_phrase or "no details"
    return one_line(message_of(data) or text, 500)


NOT_JSON = object()


def loads(raw: bytes | str) -> Any:
    """Parsed JSON, or NOT_JSON (malformed, not UTF-8, or nested too deeply to parse)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return NOT_JSON


def message_of(data: Any) -> str:
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            return message if isinstance(message, str) and message else one_line(str(error), 300)
        if isinstance(error, str):
            return error
        detail = data.get("detail") or data.get("message")
        if detail:
            return detail if isinstance(detail, str) else one_line(str(detail), 300)
    return ""


class LineTooLong(Exception):
    pass


def lines(chunks: Iterator[bytes], limit: int = SSE_LINE_LIMIT) -> Iterator[bytes]:
    """Lines of a byte stream ended by CRLF, LF or CR (a CR at a chunk's end waits for a possible LF).
    A line longer than `limit` raises LineTooLong as soon as that many bytes have come without a line end."""
    pending = b""
    for chunk in chunks:
        text = pending + chunk
        held = text.endswith(b"\r")
        *lines, pending = _EOL.split(text[:-1] if held else text)
        if held:
            pending += b"\r"
        for line in lines:
            if len(line) > limit:
                raise LineTooLong()
            yield line
        if len(pending) > limit:
            raise LineTooLong()
    if pending.rstrip(b"\r"):
        yield pending.rstrip(b"\r")


# --- the fields of a streamed answer's events -------------------------------------------------------


def first_choice(event: dict, where: str) -> dict | None:
    choices = event.get("choices")
    if choices is None or choices == []:  # a usage-only event (include_usage) has none
        return None
    if not isinstance(choices, list):
        raise ServerError(f"{where} sent an event whose 'choices' is {describe(choices)}, not a list")
    if not isinstance(choices[0], dict):
        raise ServerError(f"{where} sent an event whose first choice is {describe(choices[0])}, not an object")
    return choices[0]


def completion_text(choice: dict, where: str) -> str:
    text = choice.get("text")
    if text is not None and not isinstance(text, str):
        raise ServerError(f"{where} sent a choice whose 'text' is {describe(text)}, not a string")
    return text or ""


def delta_text(choice: dict, where: str) -> str | None:
    """A chat event's token: `delta.content` (None in the first event, which names the role)."""
    delta = choice.get("delta", choice.get("message"))
    if delta is None:
        return None
    if not isinstance(delta, dict):
        raise ServerError(f"{where} sent a choice whose 'delta' is {describe(delta)}, not an object")
    content = delta.get("content")
    if content is not None and not isinstance(content, str):
        raise ServerError(f"{where} sent a delta whose 'content' is {describe(content)}, not a string")
    return content


def read_usage(usage, result: GenerationResult) -> bool:
    """Token counts from an event's `usage` (only whole numbers are taken: it is a report, and a
    malformed one is ignored rather than failing the answer). True when it counted the new tokens."""
    if not isinstance(usage, dict):
        return False

    def number(key):
        value = usage.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    prompt, new = number("prompt_tokens"), number("completion_tokens")
    if prompt is not None:
        result.stats.prompt_tokens = prompt
    if new:
        result.stats.new_tokens = new
    return new is not None
