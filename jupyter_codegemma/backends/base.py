"""What a request returns, shared by the local engine and the remote backend: the result records, the
running-request wrapper, and the cancel tokens they combine. Imports no JAX (the thin client uses it)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from .local.sampler import StepStats


@dataclasses.dataclass
class GenerationResult:
    prompt_ids: list[int]
    ids: list[int]  # generated ids only (a stop id, if one ended generation, is included)
    text: str  # generated text, stop tokens excluded
    stats: StepStats
    ttft_ms: float = 0.0
    total_ms: float = 0.0

    def to_json(self) -> dict:
        return {
            "prompt_ids": self.prompt_ids, "ids": self.ids, "text": self.text,
            "ttft_ms": round(self.ttft_ms, 2), "total_ms": round(self.total_ms, 2),
            "prompt_tokens": self.stats.prompt_tokens, "reused_tokens": self.stats.reused_tokens,
            "new_tokens": self.stats.new_tokens, "finish_reason": self.stats.finish_reason,
        }


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


@dataclasses.dataclass
class CompletionResult(GenerationResult):
    raw_text: str = ""  # what the model wrote, before shaping to the mode
    mode: str = "line"  # the mode used ("auto" resolved)
    layout: str = "psm"  # the prompt layout: "psm", "spm" or "prefix-only"

    def to_json(self) -> dict:
        return {**super().to_json(), "raw_text": self.raw_text, "mode": self.mode, "layout": self.layout}


class Completion(Generation):
    """A running completion: iterate for the whole suggestion so far; `result` at the end."""


class Flag:
    """A cancel token that is set by hand."""

    def __init__(self):
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


class Either:
    """Cancelled when either token is."""

    def __init__(self, first, second):
        self.first, self.second = first, second

    def is_set(self) -> bool:
        return self.first.is_set() or (self.second is not None and self.second.is_set())
