"""The engine's interface over a shared OpenAI-compatible completions server (vLLM, llama.cpp, Ollama).

    engine = RemoteEngine.load(RemoteOptions(url="http://llm.example.org:8000", model="google/codegemma-2b"))
    for text in engine.complete("def add(a, b):\\n    return", "\\n"):
        ...

The kernel becomes a thin client: no JAX, no weights. Requests go to `POST /v1/completions` with
`stream: true`; the answer arrives as server-sent events (transport.py). What the local Engine does
with token ids is done here with text:

- FIM: a model with FIM pieces (CodeGemma base models) is sent the PSM prompt as raw text,
  `[path\\n]<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>`; the server tokenizes the
  pieces as control tokens and adds <bos>. Others (the default Gemma 3 270M) get the prefix only,
  and the suffix is used to stop and trim, exactly as the local engine does (fim.shape).
- Stops: the suggestion is shaped as it streams; once it is complete the stream is closed, which
  tells the server to stop. Stop strings ("\\n" for a line, FIM pieces) save the round trip.
- Context: the server counts tokens, the client does not. Prompts are cut to a character budget
  (CHARS_PER_TOKEN) first; a prompt the server still refuses is a PromptError with its words.

This module imports neither JAX nor the local engine.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Iterator, Sequence

from .. import fim
from ..base import (COMPLETION_STOPS, GENERATION_STOPS, CancelToken, Completion, CompletionResult, Generation,
                    GenerationResult, is_instruction_model, model_has_fim, shaped_stream, suggestion_shape)
from ..errors import CodeGemmaError, PromptError, SettingsError
from .transport import Endpoint, ServerError, ServerUnavailable, request_json, stream_events

FIM_SETTINGS = ("auto", "yes", "no")
DEFAULT_API_KEY_ENV = "CODEGEMMA_API_KEY"
# Gemma's tokenizer averages about 3.5 characters a token on code; 3 keeps a trimmed prompt inside the
# context in nearly every case, and the server's own check catches the rest.
CHARS_PER_TOKEN = 3


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

    def __post_init__(self) -> None:
        if self.fim not in FIM_SETTINGS:
            raise SettingsError(f"fim must be one of {', '.join(FIM_SETTINGS)}, got {self.fim!r}")
        if self.context_len < 64:
            raise SettingsError(f"context_len must be at least 64, got {self.context_len}")
        if self.retries < 0 or self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise SettingsError("retries must be >= 0 and the timeouts > 0")

    def endpoint(self) -> Endpoint:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return Endpoint(self.url, api_key=key or None, connect_timeout=self.connect_timeout,
                        read_timeout=self.read_timeout, retries=self.retries, backoff=self.backoff)


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
        self.last_prompt = ""  # the text last sent, for debugging prompt building
        self.last_prompt_ids: list[int] = []  # the server tokenizes: no ids on this side
        self._tokenizer = None
        self._instruction: bool | None = None

    @property
    def instruction(self) -> bool:
        """An instruction model by its name, whose template the server's tokenizer knows (asked once)."""
        if self._instruction is None:
            from ..chat import has_chat_template

            self._instruction = is_instruction_model(self.model) and has_chat_template(self.tokenizer)
        return self._instruction

    @classmethod
    def load(cls, options: RemoteOptions, progress: Callable[[str], None] | None = None) -> "RemoteEngine":
        """Connect: ask the server which models it serves (a clear error if it is down or lacks the model)."""
        say = progress or (lambda message: None)
        started = time.perf_counter()
        endpoint = options.endpoint()
        say(f"connecting to the server at {endpoint.display}")
        # The read timeout, not a short one: llama-cpp-python answers /v1/models only between generations.
        listing = request_json(endpoint, "GET", endpoint.api("/models"))
        models = [m for m in (listing.get("data") or []) if isinstance(m, dict) and m.get("id")] \
            if isinstance(listing, dict) else []
        names = [str(m["id"]) for m in models]
        if options.model and names and options.model not in names:
            raise ServerError(f"{endpoint.display} does not serve {options.model!r}; it serves: {', '.join(names)}")
        if not options.model and not names:
            raise ServerError(f"{endpoint.display} lists no models at {endpoint.api('/models')}: "
                              f"name one (%codegemma use URL --model NAME)")
        model = options.model or names[0]
        entry = next((m for m in models if m["id"] == model), {})
        # vLLM reports its context as max_model_len; llama.cpp's server reports nothing usable here.
        context = entry.get("max_model_len")
        context_len = int(context) if isinstance(context, int) and context >= 64 else options.context_len
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
        body = self._body(prompt, max_new_tokens, sampling, GENERATION_STOPS)
        return Generation(self._pieces(body, cancel, result), result)

    def complete(self, prefix: str, suffix: str = "", *, mode: str = "auto", layout: str = "psm",
                 path: str | None = None, context_files: Sequence[fim.ContextFile] = (),
                 max_new_tokens: int | None = None, sampling=None, cancel=None) -> Completion:
        """Complete the code between prefix and suffix; iterate for the whole suggestion so far."""
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
        body = self._body(prompt, max_new_tokens, sampling, stops)

        def start(stop: CancelToken) -> Generation:
            raw = GenerationResult(prompt_ids=[], ids=[], text="", prompt=prompt)
            return Generation(self._pieces(body, stop, raw), raw)

        return Completion(shaped_stream(start, suggestion_shape(prefix, suffix, resolved), result, cancel), result)

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

    def _body(self, prompt: str, max_new_tokens: int, sampling, stops: Sequence[str]) -> dict:
        # repeat_penalty 1 (off): the local engine has none, and llama.cpp's server defaults to 1.1.
        # include_usage: servers that know it (vLLM, Ollama) report the prompt's token count at the end.
        body = {"model": self.model, "prompt": prompt, "max_tokens": int(max_new_tokens), "stream": True,
                "stream_options": {"include_usage": True}, "temperature": 0.0, "repeat_penalty": 1.0,
                "stop": list(stops)}
        if sampling is not None:
            body["temperature"] = float(sampling.temperature)
            if sampling.temperature > 0:
                body["seed"] = int(sampling.seed)
                if sampling.top_p is not None:
                    body["top_p"] = float(sampling.top_p)
                if sampling.top_k is not None:
                    body["top_k"] = int(sampling.top_k)  # not OpenAI's, but vLLM, llama.cpp and Ollama take it
        return body

    def _pieces(self, body: dict, cancel, result: GenerationResult) -> Iterator[str]:
        """Text pieces as the server sends them; fills `result` as it goes."""
        started = time.perf_counter()
        self.last_prompt = body["prompt"]
        try:
            for event in stream_events(self._endpoint, self._endpoint.api("/completions"), body, cancel):
                choices = event.get("choices") or []
                choice = choices[0] if choices and isinstance(choices[0], dict) else {}
                usage = event.get("usage")
                if isinstance(usage, dict):
                    result.stats.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                    result.stats.new_tokens = int(usage.get("completion_tokens") or result.stats.new_tokens)
                piece = choice.get("text") or ""
                if choice and not result.ttft_ms:  # the first token, even one a stop string swallowed
                    result.ttft_ms = (time.perf_counter() - started) * 1e3
                if choice.get("finish_reason"):
                    result.stats.finish_reason = "length" if choice["finish_reason"] == "length" else "stop"
                if piece:
                    if not isinstance(usage, dict):
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
        elif not result.stats.finish_reason:
            # [DONE] without a finish reason: the server cut this answer short to serve another request.
            raise ServerError(f"{self._endpoint.display} ended the answer before it was finished (a "
                              f"llama-cpp-python server does this unless started with --interrupt_requests "
                              f"false)")

    # --- tokens (the server's tokenizer) -----------------------------------------------------------

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from .tokenizer import ServerTokenizer

            self._tokenizer = ServerTokenizer(self._endpoint, self.model)
        return self._tokenizer

    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]:
        return self.tokenizer.encode(text, add_bos=add_bos)

    def reset_cache(self) -> None:
        """The server owns its caches."""


__all__ = ["RemoteEngine", "RemoteOptions", "ServerError", "ServerUnavailable", "CodeGemmaError", "model_has_fim"]
