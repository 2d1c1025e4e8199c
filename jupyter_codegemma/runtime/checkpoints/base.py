"""What every checkpoint loader returns."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..config import GemmaConfig

Params = dict[str, Any]  # nested dict of numpy arrays, in the Flax checkpoint's tree


@dataclasses.dataclass
class Checkpoint:
    config: GemmaConfig
    params: Params
    tokenizer: Any  # runtime.tokenizer.Tokenizer
    source: str  # the path the user gave (or the default model's file)
    format: str  # "gguf", "safetensors", "orbax"
    sha256: str | None = None
