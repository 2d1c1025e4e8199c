"""The engine's interface over a shared OpenAI-compatible completions server (vLLM, llama.cpp, Ollama).

    engine = RemoteEngine.load(RemoteOptions(url="http://llm.example.org:8000", model="google/codegemma-2b"))
    for text in engine.complete("def add(a, b):\\n    return", "\\n"):
        ...

The kernel becomes a thin client: no JAX, no weights. Requests go to `POST /v1/completions` with
`stream: true`, chats with an instruction model (`chat`: explain, fix, `%%codegemma --chat`) to
`POST /v1/chat/completions`, where the server applies the model's own chat template; answers arrive
as server-sent events (transport.py), and every field read from them is checked first (a reply of
the wrong shape is one ServerError line, never a KeyError). What the local Engine does with token
ids is done here with text:

- FIM: a model with FIM pieces (CodeGemma base models) is sent the PSM prompt as raw text,
  `[path\\n]<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>`; the server tokenizes the
  pieces as control tokens and adds <bos>. Others (the default Gemma 3 270M) get the prefix only,
  and the suffix is used to stop and trim, exactly as the local engine does (fim.shape).
- Stops: the suggestion is shaped as it streams; once it is complete the stream is closed, which
  tells the server to stop. Stop strings ("\\n" for a line, FIM pieces) save the round trip.
- Context: the server counts tokens, the client does not. Prompts are cut to a character budget
  (CHARS_PER_TOKEN) first; a prompt the server still refuses is a PromptError with its words.
  `count_tokens` asks the server's tokenize route where it has one, and estimates from the
  characters where it has none (Ollama): the conversation commands fit their context with it.

This module imports neither JAX nor the local engine.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Collection, Iterator, Sequence

from .. import candidates, fim
from ..base import (COMPLETION_STOPS, GENERATION_STOPS, CancelToken, Completion, CompletionResult, Generation,
                    GenerationResult, is_instruction_model, model_has_fim, shaped_stream, suggestion_shape)
from ..chat import Turn
from ..errors import CodeGemmaError, PromptError, SettingsError
from .replies import completion_text, delta_text, first_choice, read_usage
from .transport import Endpoint, ServerError, ServerUnavailable, describe, request_json, stream_events

FIM_SETTINGS = ("auto", "yes", "no")
DEFAULT_API_KEY_ENV = "CODEGEMMA_API_KEY"
# Gemma's tokenizer averages about 3.5 characters a token on code; 3 keeps a trimmed prompt inside the
# context in nearly every case, and the server's own check catches the rest.
CHARS_PER_TOKEN = 3
_ROLES = {"user": "user", "model": "assistant"}  # Gemma's turn roles -> the chat API's
_MESSAGE_CHARS = 16  # what a template adds around a message, in characters (for the character budget)


@dataclasses.dataclass(frozen=True)
class RemoteOptions:
    """Which server, which of its models, and how to talk to it. The API key is read from the
    environment variable named here when the engine loads: it is never stored in settings or notebooks."""

    url: str
    model: str = ""  # the server's name for the model; "" = the first one it lists
    api_key_env: str = DEFAULT_API_KEY_ENV
    fim: str = "auto"  # "auto": from the model's name (CodeGemma base models have FIM); "yes"; "no"
    context_len: int = 4096  # the server's context in tokens, when it does not report one
    connect_timeout: float = 5.0
    read_timeout: float = 120.0
    retries: int = 3
    backoff: float = 0.5
    allow_insecure_http: bool = False  # send the key over plain http:// to a host that is not loopback

    def __post_init__(self) -> None:
        if self.fim not in FIM_SETTINGS:
            raise SettingsError(f"fim must be one of {', '.join(FIM_SETTINGS)}, got {self.fim!r}")
        if self.context_len < 64:
            raise SettingsError(f"context_len must be at least 64, got {self.context_len}")
        if self.retries < 0 or self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise SettingsError("retries must be >= 0 and the timeouts > 0")

    def __repr__(self) -> str:  # the URL without credentials written into it (the key is never here)
        from .endpoint import safe_url

        fields = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.name != "url")
        return f"RemoteOptions(url={safe_url(self.url)!r}, {fields})"

    def endpoint(self) -> Endpoint:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        try:
            return Endpoint(self.url, api_key=key or None, connect_timeout=self.connect_timeout,
                            read_timeout=self.read_timeout, retries=self.retries, backoff=self.backoff,
                            allow_insecure_http=self.allow_insecure_http)
        except SettingsError as e:  # say where the key came from (never the key)
            raise SettingsError(str(e).replace("the API key", f"the API key (${self.api_key_env})", 1)) from None


# --- the backend -----------------------------------------------------------------------------------


class RemoteEngine:
    kind = "remote"
    format = "remote"

    def __init__(self, options: RemoteOptions, endpoint: Endpoint, model: str, context_len: int,
                 load_seconds: float = 0.0):
        self.options, self._endpoint = options, endpoint
        self.model = model
        self.source = endpoint.display
        self.device = f"remote ({endpoint.display})"
        self.context_len = context_len
        self.load_seconds = load_seconds
        self.has_fim = model_has_fim(model) if options.fim == "auto" else options.fim == "yes"
        self.last_prompt = ""  # the text last sent, for debugging prompt building (a chat: in Gemma's template)
        self.last_prompt_ids: list[int] = []  # the server tokenizes: no ids on this side
        self._tokenizer = None
        self._no_tokenize_route = ""  # why not, once the server has said it has none

    @property
    def instruction(self) -> bool:
        """An instruction model, by its name: `chat` goes to the server's chat route, which applies the
        model's own template (no tokenizer needed on this side)."""
        return is_instruction_model(self.model)

    @classmethod
    def load(cls, options: RemoteOptions, progress: Callable[[str], None] | None = None) -> "RemoteEngine":
        """Connect: ask the server which models it serves (a clear error if it is down or lacks the model)."""
        say = progress or (lambda message: None)
        started = time.perf_counter()
        endpoint = options.endpoint()
        say(f"connecting to the server at {endpoint.display}")
        # The read timeout, not a short one: llama-cpp-python answers /v1/models only between generations.
        route = endpoint.api("/models")
        try:
            listing = request_json(endpoint, "GET", route)
        except ServerError as e:
            if e.status == 404:
                raise ServerError(f"{endpoint.where(route)} does not exist (HTTP 404): is {endpoint.display} an "
                                  f"OpenAI-compatible server (vLLM, llama.cpp, Ollama)?", 404) from None
            raise
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            raise ServerError(f"{endpoint.where(route)} answered with {describe(listing)}, not a model list "
                              f"({{\"data\": [...]}}): is {endpoint.display} an OpenAI-compatible server?")
        models = [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"]]
        names = [m["id"] for m in models]
        if options.model and names and options.model not in names:
            shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
            raise ServerError(f"{endpoint.display} does not serve {options.model!r}; it serves: {shown}")
        if not options.model and not names:
            raise ServerError(f"{endpoint.display} lists no models at {route}: "
                              f"name one (%codegemma use URL --model NAME)")
        model = options.model or names[0]
        entry = next((m for m in models if m["id"] == model), {})
        # vLLM reports its context as max_model_len; llama.cpp's server reports nothing usable here.
        context = entry.get("max_model_len")
        usable = isinstance(context, int) and not isinstance(context, bool) and context >= 64
        context_len = context if usable else options.context_len
        return cls(options, endpoint, model, context_len, load_seconds=time.perf_counter() - started)

    def warm_up(self, progress: Callable[[str], None] | None = None) -> float:
        """One token from the server: the first real request then does not wait for its model to load."""
        if progress is not None:
            progress(f"asking {self.model} on {self._endpoint.display} for a first token")
        started = time.perf_counter()
        self.generate("def", max_new_tokens=1).wait()
        return time.perf_counter() - started

    def info(self) -> dict:
        return {
            "model": self.model, "source": self.source, "format": "remote", "backend": "remote",
            "server": self._endpoint.display, "architecture": "", "device": self.device, "dtype": "",
            "devices": 0, "parameters": 0, "context": self.context_len, "fim": self.has_fim,
            "load_seconds": round(self.load_seconds, 3),
        }

    # --- requests ---------------------------------------------------------------------------------

    def generate(self, prompt: str | Sequence[int], *, max_new_tokens: int = 128, sampling=None,
                 stop_ids: Sequence[int] | None = None, cancel=None, truncate: bool = False) -> Generation:
        """Stream text continuing `prompt` (text, or ids the server's tokenizer turns back into text)."""
        if max_new_tokens < 1:
            raise PromptError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if not isinstance(prompt, str):
            prompt = self.tokenizer.decode_prompt(list(prompt))
        if not prompt:
            raise PromptError("the prompt is empty: give some text to continue")
        budget = self._char_budget(max_new_tokens)
        if truncate and len(prompt) > budget:
            prompt = prompt[len(prompt) - budget:]  # the end of a prompt is what the answer depends on
        result = GenerationResult(prompt_ids=[], ids=[], text="", prompt=prompt)
        body = {"model": self.model, "prompt": prompt, **self._options(max_new_tokens, sampling, GENERATION_STOPS)}
        return Generation(self._pieces("/completions", body, prompt, cancel, result, completion_text), result)

    def chat(self, turns: Sequence[Turn], *, system: str | None = None, max_new_tokens: int = 128,
             sampling=None, cancel=None) -> Generation:
        """Stream the model's next turn after `turns` (roles "user" and "model", the last a user's) from
        the server's chat route, which applies the model's own chat template. Gemma has no system role:
        `system` opens the first user message, as backends/chat.py does. A chat over the character
        budget loses its oldest exchanges first, then the start of its first message."""
        if max_new_tokens < 1:
            raise PromptError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        messages = messages_for(turns, system, self._char_budget(max_new_tokens))
        prompt = "".join(f"<start_of_turn>{'model' if m['role'] == 'assistant' else 'user'}\n{m['content']}"
                         f"<end_of_turn>\n" for m in messages) + "<start_of_turn>model\n"
        result = GenerationResult(prompt_ids=[], ids=[], text="", prompt=prompt)
        body = {"model": self.model, "messages": messages, **self._options(max_new_tokens, sampling, GENERATION_STOPS)}
        return Generation(self._pieces("/chat/completions", body, prompt, cancel, result, delta_text), result)

    def complete(self, prefix: str, suffix: str = "", *, mode: str = "auto", layout: str = "psm",
                 path: str | None = None, context_files: Sequence[fim.ContextFile] = (),
                 max_new_tokens: int | None = None, sampling=None, cancel=None, allowed_names: Sequence[str] = (),
                 namespace: Collection[str] | None = None, check: bool = True) -> Completion:
        """Complete between prefix and suffix; iterate for the suggestion so far (candidates.shown_or_withheld)."""
        try:
            resolved = fim.resolve_mode(mode, prefix, suffix)
        except ValueError as e:
            raise PromptError(str(e)) from None
        if layout not in fim.LAYOUTS:
            raise PromptError(f"layout must be one of {', '.join(fim.LAYOUTS)}, got {layout!r}")
        if max_new_tokens is None:
            max_new_tokens = 48 if resolved == "line" else 160
        if max_new_tokens < 1:
            raise PromptError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        prompt = self._completion_prompt(prefix, suffix, layout, path, context_files, max_new_tokens)
        # The same ends as fim.shape: a line ends at its newline, anything at two blank lines.
        stops = ("\n",) if resolved == "line" else ("\n\n\n",)
        stops += COMPLETION_STOPS if self.has_fim else GENERATION_STOPS
        result = CompletionResult(prompt_ids=[], ids=[], text="", prompt=prompt, mode=resolved,
                                  layout=layout if self.has_fim else "prefix-only")
        body = {"model": self.model, "prompt": prompt, **self._options(max_new_tokens, sampling, stops)}

        def start(stop: CancelToken) -> Generation:
            raw = GenerationResult(prompt_ids=[], ids=[], text="", prompt=prompt)
            return Generation(self._pieces("/completions", body, prompt, stop, raw, completion_text), raw)

        shown = shaped_stream(start, suggestion_shape(prefix, suffix, resolved), result, cancel)
        return Completion(candidates.shown_or_withheld(shown, result, prefix, suffix, namespace, allowed_names, check), result)

    def complete_text(self, prompt: str | Sequence[int], **kwargs) -> GenerationResult:
        return self.generate(prompt, **kwargs).wait()

    def _completion_prompt(self, prefix, suffix, layout, path, context_files, max_new_tokens) -> str:
        """The prompt text, cut to the character budget farthest from the cursor first (as fim.build_prompt)."""
        budget = self._char_budget(max_new_tokens)
        if not self.has_fim:
            return prefix[max(len(prefix) - budget, 0):]
        head = f"{path}\n" if path else ""
        files = [f"{f.path}\n{f.content}{fim.FILE_SEPARATOR}" for f in context_files]
        room = budget - len(head) - 3 * 16  # the three pieces, as text
        while files and sum(map(len, files)) + len(prefix) + len(suffix) > room:
            files.pop(0)
        room -= sum(map(len, files))
        suffix = suffix[:max(room // 4, room - len(prefix))]
        prefix = prefix[max(len(prefix) - (room - len(suffix)), 0):]
        head = "".join(files) + head
        if layout == "psm":
            return f"{head}{fim.FIM_PREFIX}{prefix}{fim.FIM_SUFFIX}{suffix}{fim.FIM_MIDDLE}"
        return f"{head}{fim.FIM_PREFIX}{fim.FIM_SUFFIX}{suffix}{fim.FIM_MIDDLE}{prefix}"

    def _char_budget(self, max_new_tokens: int) -> int:
        room = self.context_len - max_new_tokens - 1
        if room < 8:
            raise PromptError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the server's "
                              f"context of {self.context_len} tokens")
        return room * CHARS_PER_TOKEN

    @staticmethod
    def _options(max_new_tokens: int, sampling, stops: Sequence[str]) -> dict:
        """The fields a completion and a chat request share: length, streaming, sampling, stops."""
        # The repetition penalty is sampling's (1.0, off, unless asked for: llama.cpp's server would
        # default to 1.1), under llama.cpp's names (repeat_penalty over repeat_last_n ids) and vLLM's
        # (repetition_penalty, over the prompt and the answer); OpenAI's frequency_penalty stays 0.
        # include_usage: servers that know it (vLLM, Ollama) report the prompt's token count at the end.
        body = {"max_tokens": int(max_new_tokens), "stream": True, "stream_options": {"include_usage": True},
                "temperature": 0.0, "repeat_penalty": 1.0, "repetition_penalty": 1.0, "stop": list(stops)}
        if sampling is not None:
            penalty = float(sampling.repetition_penalty)
            body["repeat_penalty"] = body["repetition_penalty"] = penalty
            if sampling.penalised:
                body["repeat_last_n"] = int(sampling.repetition_window)
            body["temperature"] = float(sampling.temperature)
            if sampling.temperature > 0:
                body["seed"] = int(sampling.seed)
                if sampling.top_p is not None:
                    body["top_p"] = float(sampling.top_p)
                if sampling.top_k is not None:
                    body["top_k"] = int(sampling.top_k)  # not OpenAI's, but vLLM, llama.cpp and Ollama take it
        return body

    def _pieces(self, route: str, body: dict, prompt: str, cancel, result: GenerationResult,
                text_of: Callable[[dict, str], str | None]) -> Iterator[str]:
        """Text pieces as the server sends them (`text_of` reads one from an event's first choice: None
        when the event carries no token); fills `result` as it goes. Every field is checked before use."""
        started = time.perf_counter()
        self.last_prompt = prompt
        path = self._endpoint.api(route)
        where = self._endpoint.where(path)
        answered = False  # an event with a choice came
        try:
            for event in stream_events(self._endpoint, path, body, cancel):
                counted = read_usage(event.get("usage"), result)
                choice = first_choice(event, where)
                if choice is None:
                    continue
                answered = True
                piece = text_of(choice, where)
                finish = choice.get("finish_reason")
                if finish is not None and not isinstance(finish, str):
                    raise ServerError(f"{where} sent a finish_reason that is {describe(finish)}, not a string")
                if (piece is not None or finish) and not result.ttft_ms:  # even a token a stop string swallowed
                    result.ttft_ms = (time.perf_counter() - started) * 1e3
                if finish:
                    result.stats.finish_reason = "length" if finish == "length" else "stop"
                if piece:
                    if not counted:
                        result.stats.new_tokens += 1  # servers stream about one token an event
                    result.text += piece
                    yield piece
        except ServerUnavailable:
            raise
        except ServerError as e:
            if e.status in (400, 413, 422):  # the server's word on the prompt (too long for its context, ...)
                raise PromptError(str(e)) from None
            raise
        finally:
            result.total_ms = (time.perf_counter() - started) * 1e3
        if cancel is not None and cancel.is_set():
            result.stats.finish_reason = "cancelled"
        elif not answered:
            raise ServerError(f"{where} ended its stream without an answer (no event had a 'choices' list): "
                              f"is {self._endpoint.display} an OpenAI-compatible server?")
        elif not result.stats.finish_reason:
            # [DONE] without a finish reason: the server cut this answer short to serve another request.
            raise ServerError(f"{self._endpoint.display} ended the answer before it was finished (a "
                              f"llama-cpp-python server does this unless started with --interrupt_requests "
                              f"false)")

    # --- tokens (the server's tokenizer) -----------------------------------------------------------

    @property
    def tokenizer(self):
        """The server's tokenizer (tokenizer.py); NoTokenizeRoute, remembered, when it has none."""
        from .tokenizer import NoTokenizeRoute, ServerTokenizer

        if self._tokenizer is None:
            if self._no_tokenize_route:
                raise NoTokenizeRoute(self._no_tokenize_route, 404)
            try:
                self._tokenizer = ServerTokenizer(self._endpoint, self.model)
            except NoTokenizeRoute as e:
                self._no_tokenize_route = str(e)
                raise
        return self._tokenizer

    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]:
        return self.tokenizer.encode(text, add_bos=add_bos)

    def count_tokens(self, text: str) -> int:
        """How many tokens `text` is (no <bos>): the server's count, or where it has no tokenize route
        (Ollama), an estimate from the characters (CHARS_PER_TOKEN, on the safe side)."""
        from .tokenizer import NoTokenizeRoute

        if not self._no_tokenize_route:
            try:
                return len(self.tokenizer.encode(text, add_bos=False))
            except NoTokenizeRoute:
                pass
        return -(-len(text) // CHARS_PER_TOKEN)

    def score(self, texts: Sequence[str]) -> None:
        """None: llama.cpp and Ollama give no prompt log-probabilities, so fixes are ranked by edit size."""
        return None

    def reset_cache(self) -> None:
        """The server owns its caches."""


# --- the chat API's messages --------------------------------------------------------------------


def messages_for(turns: Sequence[Turn], system: str | None, budget: int) -> list[dict]:
    """The chat API's messages for `turns`, within `budget` characters: the oldest exchanges go first,
    then the start of the first message; `system` opens the first user message (Gemma has no system role)."""
    turns = list(turns)
    if not turns or turns[-1].role != "user":
        raise PromptError("a chat must end with a user turn")
    for turn in turns:
        if turn.role not in _ROLES:
            raise PromptError(f"unknown chat role {turn.role!r}: Gemma knows 'user' and 'model'")

    def size(ts):
        return sum(len(t.text) + _MESSAGE_CHARS for t in ts) + (len(system) + 2 if system else 0)

    while len(turns) > 1 and (size(turns) > budget or turns[0].role != "user"):
        turns = turns[2:] if turns[0].role == "user" and len(turns) > 2 else turns[1:]
    over = size(turns) - budget
    if over > 0:  # the end of a prompt is what the answer depends on
        turns[0] = Turn(turns[0].role, turns[0].text[min(over, len(turns[0].text)):])
    messages = [{"role": _ROLES[t.role], "content": t.text} for t in turns]
    if system:
        messages[0]["content"] = f"{system}\n\n{messages[0]['content']}"
    return messages


__all__ = ["RemoteEngine", "RemoteOptions", "ServerError", "ServerUnavailable", "CodeGemmaError", "model_has_fim"]
