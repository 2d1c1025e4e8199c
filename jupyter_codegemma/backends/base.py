"""What every backend shares: the `Backend` protocol the kernel, the exercises and `codegemma` call,
the sampling settings, the result records, the one cancel token, the stop pieces, the model-name
facts, and the one loop that shapes a streamed answer.

Imports no JAX (a thin-client kernel, which talks to a server, uses this module and never loads JAX).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Collection, Iterator, Protocol, Sequence

from . import fim
from .errors import SettingsError

# --- how to pick tokens ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How to pick each next token. temperature 0 means greedy (argmax).

    `repetition_penalty` (llama.cpp's `repeat_penalty`): the logits of the tokens among the last
    `repetition_window` ids (prompt and answer) are made less likely before picking, a positive
    logit divided by the penalty, a negative one multiplied by it; 1.0 is off.
    """

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int = 0
    repetition_penalty: float = 1.0
    repetition_window: int = 64

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise SettingsError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise SettingsError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise SettingsError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 1.0 <= self.repetition_penalty < float("inf"):  # NaN neither
            raise SettingsError(f"repetition_penalty must be a number >= 1.0 (1.0 is off), "
                                f"got {self.repetition_penalty}")
        if self.repetition_window < 1:
            raise SettingsError(f"repetition_window must be >= 1, got {self.repetition_window}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1

    @property
    def penalised(self) -> bool:
        """Whether the repetition penalty is on."""
        return self.repetition_penalty != 1.0


# --- cancelling -----------------------------------------------------------------------------------


class CancelToken:
    """Set by hand, or by any token it is linked to: a request stops when the user cancels it *or*
    when its answer is complete, and each of those is a token. Anything with `is_set()` (a
    `threading.Event`, say) can be linked."""

    def __init__(self, *linked):
        self._set = False
        self._linked = tuple(token for token in linked if token is not None)

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set or any(token.is_set() for token in self._linked)

    @property
    def set_here(self) -> bool:
        """Set by this token's own `set()`, not by a linked one."""
        return self._set


# --- results --------------------------------------------------------------------------------------


@dataclasses.dataclass
class StepStats:
    prompt_tokens: int = 0  # a server reports it at the end (usage); 0 when it does not say
    reused_tokens: int = 0  # prompt tokens whose keys and values were kept from the last request
    new_tokens: int = 0
    finish_reason: str = ""  # "stop", "length", "cancelled", "context"
    draft_accepted: int = 0  # tokens that came from verified prompt-lookup guesses


@dataclasses.dataclass
class GenerationResult:
    prompt_ids: list[int]  # empty where a server tokenizes the prompt
    ids: list[int]  # generated ids only (a stop id, if one ended generation, is included)
    text: str  # generated text, stop tokens excluded
    stats: StepStats = dataclasses.field(default_factory=StepStats)
    ttft_ms: float = 0.0
    total_ms: float = 0.0
    prompt: str = ""  # the prompt text, where it was sent as text (to a server)

    def to_json(self) -> dict:
        prompt = {"prompt": self.prompt} if self.prompt else {}
        return {
            **prompt, "prompt_ids": self.prompt_ids, "ids": self.ids, "text": self.text,
            "ttft_ms": round(self.ttft_ms, 2), "total_ms": round(self.total_ms, 2),
            "prompt_tokens": self.stats.prompt_tokens, "reused_tokens": self.stats.reused_tokens,
            "new_tokens": self.stats.new_tokens, "finish_reason": self.stats.finish_reason,
        }


@dataclasses.dataclass
class CompletionResult(GenerationResult):
    # What the model wrote, before shaping to the mode (with `ids`: of the first candidate; when the
    # check replaced it, `text` is another candidate's, and `checked` says so).
    raw_text: str = ""
    mode: str = "line"  # the mode used ("auto" resolved)
    layout: str = "psm"  # the prompt layout: "psm", "spm" or "prefix-only"
    # The check of backends/candidates.py: "passed", "replaced" (by an alternative), "ranked" (another
    # passing suggestion followed by the code after the cursor was likelier: local/alternatives.py),
    # "binds" (another passing suggestion binds a name the code after the cursor reads before anything
    # binds it), "withheld" (none passed: the text is empty), "" when it did not run; and how many
    # candidates were written.
    checked: str = ""
    candidates: int = 0

    def to_json(self) -> dict:
        return {**super().to_json(), "raw_text": self.raw_text, "mode": self.mode, "layout": self.layout,
                "checked": self.checked, "candidates": self.candidates}


class Generation:
    """A running generation: iterate for text pieces; `result` once it has finished."""

    def __init__(self, pieces: Iterator[str], result: GenerationResult):
        self._pieces = pieces
        self.result = result

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def wait(self) -> GenerationResult:
        for _ in self._pieces:
            pass
        return self.result


class Completion(Generation):
    """A running completion: iterate for the whole suggestion so far; `result` at the end."""


# --- stops and model facts ------------------------------------------------------------------------

# Where generated text ends besides <eos>: the end of a chat turn, the end of a file.
GENERATION_STOPS = ("<end_of_turn>", fim.FILE_SEPARATOR)
# A completion also ends at any FIM piece (a model that has them writes one when the gap is filled).
COMPLETION_STOPS = GENERATION_STOPS + (fim.FIM_PREFIX, fim.FIM_MIDDLE, fim.FIM_SUFFIX)


def stop_ids(tokenizer, pieces: Sequence[str]) -> tuple[int, ...]:
    """<eos> and the ids of those of `pieces` the tokenizer has."""
    ids = {tokenizer.eos_id} | {tokenizer.piece_to_id(p) for p in pieces}
    return tuple(sorted(i for i in ids if i is not None))


def is_instruction_model(name: str) -> bool:
    """Instruction-tuned Gemma models say so in their name ("-it"); they take the chat template."""
    name = name.lower()
    return "-it" in name or "instruct" in name


# What Gemma's chat template adds to a turn's text: <start_of_turn>, the role, "\n" before it and
# <end_of_turn>, "\n" after it; and to the whole: <bos>, then <start_of_turn>model\n for the answer.
CHAT_TURN_TOKENS = 5
CHAT_OPEN_TOKENS = 4


def token_counter(backend) -> Callable[[str], int]:
    """Counts a text's tokens (no <bos>) as `backend` does: its own `count_tokens` where it has one (a
    server, which estimates when it has no tokenize route), else its tokenizer. Remembers the texts it
    has counted: a chat's turns are counted again each time a shorter history is tried."""
    count = getattr(backend, "count_tokens", None) or (lambda text: len(backend.tokenize(text, add_bos=False)))
    return functools.lru_cache(maxsize=256)(count)


def chat_tokens(count: Callable[[str], int], turns: Sequence, system: str | None = None) -> int:
    """The tokens of a chat prompt for `turns` in Gemma's template (`system` opens the first turn), from
    a text counter: exact to about a token a turn, for fitting a chat to the context."""
    total = CHAT_OPEN_TOKENS + sum(count(turn.text) + CHAT_TURN_TOKENS for turn in turns)
    return total + (count(system) + 1 if system and turns else 0)


def model_has_fim(name: str) -> bool:
    """For a model known only by its name (on a server): CodeGemma's pretrained (base) models were
    trained with FIM pieces; its -it model and Gemma were not. A local model is asked its tokenizer."""
    return "codegemma" in name.lower() and not is_instruction_model(name)


# --- the one stream-and-shape loop ----------------------------------------------------------------

# (raw text so far, whether generation has ended) -> (text to show, whether the answer is complete)
Shape = Callable[[str, bool], "tuple[str, bool]"]


def shaped_stream(start: Callable[[CancelToken], Generation], shape: Shape, result: GenerationResult,
                  cancel=None) -> Iterator[str]:
    """Run the generation `start(stop)` begins, yielding its shaped text each time that changes.

    `stop` is set as soon as `shape` says the answer is complete, which ends generation after the
    step in flight (a server's stream is closed); it is linked to `cancel`. At the end `result`
    holds the shaped text, and the raw text, ids, timings and stats of the generation, with
    finish_reason "stop" when the shape ended it and "cancelled" when `cancel` did.
    """
    stop = CancelToken(cancel)
    generation = start(stop)
    raw = generation.result
    result.stats = raw.stats
    shown = ""
    for _piece in generation:
        text, complete = shape(raw.text, False)
        if complete:
            stop.set()
        if text != shown:
            shown = result.text = text
            yield text
    result.prompt_ids, result.ids, result.prompt = raw.prompt_ids, raw.ids, raw.prompt or result.prompt
    result.ttft_ms, result.total_ms = raw.ttft_ms, raw.total_ms
    if isinstance(result, CompletionResult):
        result.raw_text = raw.text
    if cancel is not None and cancel.is_set():
        result.stats.finish_reason = "cancelled"
        return
    if stop.set_here:
        result.stats.finish_reason = "stop"
    final, _ = shape(raw.text, True)
    if final != shown:
        result.text = final
        yield final


def suggestion_shape(prefix: str, suffix: str, mode: str) -> Shape:
    """How a completion is cut to a suggestion for `mode` (fim.shape), ending before any runaway repeat."""
    from .repetition import stop_runaway

    def shape(raw: str, final: bool) -> tuple[str, bool]:
        shaped = fim.shape(raw, prefix, suffix, mode, final=final)
        return shaped.text, shaped.complete

    return stop_runaway(shape)


# --- the interface --------------------------------------------------------------------------------


class Backend(Protocol):
    """A model that writes text: the JAX engine in this process (backends/local), or a server
    (backends/remote). The kernel's comm and magics, the conversation commands, the exercises and
    `codegemma` call only this."""

    kind: str  # "local" or "remote"
    source: str  # where the model came from (a path, a package, a server)
    device: str
    context_len: int  # prompt and answer together, in tokens
    has_fim: bool  # takes fill-in-the-middle prompts (else it continues the prefix)
    last_prompt_ids: list[int]  # the ids of the last prompt run (empty where a server tokenizes)
    last_prompt: str  # the text of the last prompt, where it was sent as text

    @property
    def instruction(self) -> bool:
        """An instruction-tuned model with a chat template (explain, fix, chat use the template)."""

    @property
    def tokenizer(self):
        """encode/decode/piece_to_id: the model's own, or the server's through its tokenize route."""

    def info(self) -> dict: ...

    def warm_up(self, progress: Callable[[str], None] | None = None) -> float: ...

    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]: ...

    def generate(self, prompt: str | Sequence[int], *, max_new_tokens: int = 128,
                 sampling: SamplingParams = SamplingParams(), stop_ids: Sequence[int] | None = None,
                 cancel=None, truncate: bool = False) -> Generation: ...

    def complete(self, prefix: str, suffix: str = "", *, mode: str = "auto", layout: str = "psm",
                 path: str | None = None, context_files: Sequence[fim.ContextFile] = (),
                 max_new_tokens: int | None = None, sampling: SamplingParams = SamplingParams(),
                 cancel=None, allowed_names: Sequence[str] = (), namespace: Collection[str] | None = None,
                 check: bool = True) -> Completion:
        """Complete the code between `prefix` and `suffix`. With `allowed_names`, the suggestion begins with
        one of them (the local engine constrains decoding to them; a server's suggestion that does not is
        withheld). With `check`, a suggestion passes backends/candidates.py before it is shown (`namespace`:
        the names the code can see besides those its text binds, None when unknown)."""

    def chat(self, turns: Sequence, *, system: str | None = None, max_new_tokens: int = 128,
             sampling: SamplingParams = SamplingParams(), cancel=None) -> Generation:
        """Stream an instruction model's next turn after `turns` (backends.chat.Turn: roles "user" and
        "model", the last a user's). The local engine builds Gemma's template from ids; a server gets the
        turns as messages on its chat route and applies the model's own template. Gemma has no system
        role: `system` opens the first user turn. A chat too long for the context loses its start."""

    def complete_text(self, prompt: str | Sequence[int], **kwargs) -> GenerationResult: ...

    def score(self, texts: Sequence[str]) -> Sequence[float] | None:
        """Each text's log-likelihood under the model (one scoring pass, no generation), up to a constant
        shared by all the texts: ranks fixes of the same code (exercises/repair.py). None where the
        backend cannot score (a server: the fixes are then ranked by edit size alone)."""

    def reset_cache(self) -> None: ...
