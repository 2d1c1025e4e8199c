"""The comm protocol between the notebook frontend and the kernel: the only place it is defined.

Comm target `jupyter_codegemma`. Every message, either way, is a JSON object with `"v": 1` and a
`"type"`. Requests (frontend -> kernel):

    complete  {id, prefix, suffix, language, path?, mode?, max_new_tokens?}
    cancel    {id}
    status    {}
    policy    {policy}               the notebook's AI policy (kernel/policy.py): an object, or null for
                                     none; the kernel answers with a `status`

Replies (kernel -> frontend):

    partial   {id, text}             the whole suggestion so far (not a delta)
    done      {id, text, stats}      stats: prompt_tokens, reused_tokens, new_tokens, ttft_ms, total_ms,
                                     [context_facts: how many facts from the live kernel were in the prompt]
    cancelled {id}                   after a `cancel`, or when a newer `complete` from the same comm
                                     superseded this one
    status    {model, state, device, fim, completions_enabled, [hints_enabled, message, policy]}
                                     policy: the notebook policy in force (an object, or null)
    policy    {policy}               `%codegemma policy ...` changed it: store it in the notebook's
                                     metadata (`jupyter_codegemma.policy`); sent back only if it differs
    error     {[id], code, message}

Every `complete` ends with exactly one of `done`, `cancelled` or `error`. Unknown fields in a request
are ignored (so a newer frontend can talk to an older kernel); a wrong type or a missing field is
`bad_request`. A lone UTF-16 surrogate (JSON carries one, UTF-8 cannot; the frontend cuts text to
its limits in UTF-16 units, which can split a pair) reads as U+FFFD in text, and makes an id
`bad_request` (no reply could carry it). The TypeScript twin is `labextension/src/kernel/protocol.ts`
(the frontend checks replies in `replyValidation.ts`; the Python tests' copy of that check is
`validate_reply` in `tests/protocol_golden.py`); both sides load the golden examples in
`tests/protocol/*.json`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

from .kernel.policy import NotebookPolicy, PolicyError, parse_policy

VERSION = 1
TARGET = "jupyter_codegemma"

# Size limits. The frontend trims the text farthest from the cursor to fit them; a kernel that
# receives more refuses the request (`too_large`) rather than tokenizing megabytes. The model's
# context (4096 tokens by default, ~4 characters a token) holds far less than this anyway.
MAX_PREFIX_CHARS = 100_000
MAX_SUFFIX_CHARS = 50_000
MAX_ID_CHARS = 128
MAX_PATH_CHARS = 1_024
MAX_LANGUAGE_CHARS = 64
MAX_NEW_TOKENS = 512

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # what JSON's surrogate escapes decode to; UTF-8 has none

MODES = ("line", "block", "auto")
STATES = ("loading", "ready", "busy", "error")
REQUEST_TYPES = ("complete", "cancel", "status", "policy")
REPLY_TYPES = ("partial", "done", "cancelled", "status", "error", "policy")
STATS_FIELDS = ("prompt_tokens", "reused_tokens", "new_tokens", "ttft_ms", "total_ms")
# Stats a `done` may carry: a non-negative integer each when present (absent: the kernel does not say).
OPTIONAL_STATS_FIELDS = ("context_facts",)

# Error codes (the `code` of an `error` reply).
BAD_REQUEST = "bad_request"  # not an object, a missing field, a wrong type or value
UNSUPPORTED_VERSION = "unsupported_version"  # "v" is not 1
UNKNOWN_TYPE = "unknown_type"  # "type" is not a request type
TOO_LARGE = "too_large"  # a field over its size limit
DISABLED = "disabled"  # completions are switched off (`%codegemma disable`, or the notebook's policy)
BUSY = "busy"  # the kernel's request queue is full: retry later
PROMPT_ERROR = "prompt_error"  # the model cannot take this prompt
MODEL_ERROR = "model_error"  # the model failed to load or to run
INTERNAL = "internal"  # a bug: the message says what happened
ERROR_CODES = (BAD_REQUEST, UNSUPPORTED_VERSION, UNKNOWN_TYPE, TOO_LARGE, DISABLED, BUSY, PROMPT_ERROR,
               MODEL_ERROR, INTERNAL)


class ProtocolError(Exception):
    """A message that breaks the protocol: `code` is one of ERROR_CODES, `id` the request's if known."""

    def __init__(self, code: str, message: str, id: str | None = None):
        super().__init__(message)
        self.code, self.message, self.id = code, message, id

    def reply(self) -> dict:
        return error(self.code, self.message, self.id)


@dataclasses.dataclass(frozen=True)
class Complete:
    id: str
    prefix: str
    suffix: str
    language: str
    path: str | None = None
    mode: str | None = None  # None: the kernel's default (CodeGemma.mode)
    max_new_tokens: int | None = None


@dataclasses.dataclass(frozen=True)
class Cancel:
    id: str


@dataclasses.dataclass(frozen=True)
class Status:
    pass


@dataclasses.dataclass(frozen=True)
class Policy:
    policy: NotebookPolicy | None  # None: the notebook has no policy


Request = Complete | Cancel | Status | Policy


# --- requests ---------------------------------------------------------------------------------


def parse_request(data: Any) -> Request:
    """A request message (the comm's `data`) -> Complete, Cancel, Status or Policy; or a ProtocolError."""
    if not isinstance(data, Mapping):
        raise ProtocolError(BAD_REQUEST, f"a message must be a JSON object, got {_kind(data)}")
    request_id = data.get("id")
    if (not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID_CHARS
            or _LONE_SURROGATE.search(request_id)):
        request_id = None  # echo back only an id the frontend could have sent
    try:
        version = data.get("v")
        if "v" not in data:
            raise ProtocolError(BAD_REQUEST, 'missing "v": every message carries "v": 1')
        if version != VERSION or isinstance(version, bool):
            raise ProtocolError(UNSUPPORTED_VERSION, f'"v" must be {VERSION}, got {version!r:.40}: '
                                f"the frontend and kernel extensions have different versions")
        kind = data.get("type")
        if not isinstance(kind, str):
            raise ProtocolError(BAD_REQUEST, f'"type" must be a string, got {_kind(kind)}')
        if kind == "complete":
            return _parse_complete(data)
        if kind == "cancel":
            return Cancel(id=_id(data))
        if kind == "status":
            return Status()
        if kind == "policy":
            if "policy" not in data:
                raise ProtocolError(BAD_REQUEST, 'missing "policy" (an object, or null for none)')
            try:
                return Policy(parse_policy(data["policy"]))
            except PolicyError as e:
                raise ProtocolError(BAD_REQUEST, str(e)) from None
        raise ProtocolError(UNKNOWN_TYPE, f"unknown request type {kind[:40]!r}: expected one of "
                            f"{', '.join(REQUEST_TYPES)}")
    except ProtocolError as e:
        e.id = e.id or request_id
        raise


def _parse_complete(data: Mapping) -> Complete:
    request_id = _id(data)
    prefix = _string(data, "prefix", MAX_PREFIX_CHARS)
    suffix = _string(data, "suffix", MAX_SUFFIX_CHARS)
    language = _string(data, "language", MAX_LANGUAGE_CHARS)
    path = _string(data, "path", MAX_PATH_CHARS, required=False)
    mode = data.get("mode")
    if mode is not None and (not isinstance(mode, str) or mode not in MODES):
        raise ProtocolError(BAD_REQUEST, f'"mode" must be one of {", ".join(MODES)}, got {mode!r:.40}')
    max_new_tokens = data.get("max_new_tokens")
    if max_new_tokens is not None:
        if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool):
            raise ProtocolError(BAD_REQUEST, f'"max_new_tokens" must be an integer, got {_kind(max_new_tokens)}')
        if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
            raise ProtocolError(BAD_REQUEST, f'"max_new_tokens" must be in 1..{MAX_NEW_TOKENS}, got {max_new_tokens}')
    return Complete(id=request_id, prefix=prefix, suffix=suffix, language=language, path=path, mode=mode,
                    max_new_tokens=max_new_tokens)


def _id(data: Mapping) -> str:
    value = data.get("id")
    if not isinstance(value, str) or not value:
        raise ProtocolError(BAD_REQUEST, f'"id" must be a non-empty string, got {_kind(value)}')
    if len(value) > MAX_ID_CHARS:
        raise ProtocolError(TOO_LARGE, f'"id" has {len(value)} characters; the limit is {MAX_ID_CHARS}')
    if _LONE_SURROGATE.search(value):
        raise ProtocolError(BAD_REQUEST, '"id" has a lone UTF-16 surrogate: a reply could not carry it')
    return value


def _string(data: Mapping, name: str, limit: int, required: bool = True) -> str | None:
    if name not in data or (not required and data[name] is None):
        if required:
            raise ProtocolError(BAD_REQUEST, f'missing "{name}" (a string)')
        return None
    value = data[name]
    if not isinstance(value, str):
        raise ProtocolError(BAD_REQUEST, f'"{name}" must be a string, got {_kind(value)}')
    if len(value) > limit:
        raise ProtocolError(TOO_LARGE, f'"{name}" has {len(value)} characters; the limit is {limit}: '
                            f"send the text nearest the cursor")
    return _LONE_SURROGATE.sub("\ufffd", value)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# --- replies ----------------------------------------------------------------------------------


def partial(id: str, text: str) -> dict:
    return {"v": VERSION, "type": "partial", "id": id, "text": text}


def done(id: str, text: str, *, prompt_tokens: int, reused_tokens: int, new_tokens: int, ttft_ms: float,
         total_ms: float, context_facts: int | None = None) -> dict:
    stats = {"prompt_tokens": int(prompt_tokens), "reused_tokens": int(reused_tokens),
             "new_tokens": int(new_tokens), "ttft_ms": round(float(ttft_ms), 1),
             "total_ms": round(float(total_ms), 1)}
    if context_facts is not None:  # the kernel-context setting is on (0: nothing known at this cursor)
        stats["context_facts"] = int(context_facts)
    return {"v": VERSION, "type": "done", "id": id, "text": text, "stats": stats}


def cancelled(id: str) -> dict:
    return {"v": VERSION, "type": "cancelled", "id": id}


def status(*, model: str, state: str, device: str, fim: bool, completions_enabled: bool,
           hints_enabled: bool = True, message: str | None = None, policy: dict | None = None) -> dict:
    """`policy`: the notebook policy in force (its JSON), or None for none."""
    reply = {"v": VERSION, "type": "status", "model": model, "state": state, "device": device, "fim": bool(fim),
             "completions_enabled": bool(completions_enabled), "hints_enabled": bool(hints_enabled)}
    if message:
        reply["message"] = message
    reply["policy"] = policy
    return reply


def policy(policy: dict | None) -> dict:
    """Ask the frontend to store this policy (its JSON, or None) in the notebook's metadata."""
    return {"v": VERSION, "type": "policy", "policy": policy}


def error(code: str, message: str, id: str | None = None) -> dict:
    reply = {"v": VERSION, "type": "error", "code": code, "message": message}
    if id is not None:
        reply["id"] = id
    return reply
