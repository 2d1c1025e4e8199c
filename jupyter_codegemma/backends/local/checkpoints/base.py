"""What every checkpoint loader returns."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..config import GemmaConfig
from ...errors import CheckpointError

Params = dict[str, Any]  # nested dict of numpy arrays, in the Flax checkpoint's tree


@dataclasses.dataclass
class Checkpoint:
    config: GemmaConfig
    params: Params
    tokenizer: Any  # runtime.tokenizer.Tokenizer
    source: str  # the path the user gave (or the default model's file)
    format: str  # "gguf", "safetensors", "orbax"
    sha256: str | None = None


def load_tokenizer_file(path):
    """A checkpoint's `tokenizer.model`; a bad one is reported as a CheckpointError naming it."""
    from ..tokenizer import Tokenizer, TokenizerError

    try:
        return Tokenizer.from_sentencepiece_file(path)
    except TokenizerError as e:
        raise CheckpointError(path, f"not a valid tokenizer.model: {e.problem}") from None
