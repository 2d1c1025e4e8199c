"""Which checkpoint a load opens: the default model (Gemma 3 270M) from the converted-weights cache,
converting its GGUF file the first time, or the file or directory the user gave (checkpoints/)."""

from __future__ import annotations

import os
from typing import Any, Callable

from . import default_model
from .checkpoints import Checkpoint, WeightsCache, load_checkpoint


def open_checkpoint(model: str | os.PathLike | None, cache: WeightsCache, say: Callable[[str], None],
                    cached_tokenizer: Callable[[str], Any]) -> Checkpoint:
    """`model`'s checkpoint (None: the default model). `cached_tokenizer(sha256)` gives a converted
    entry's tokenizer when it is already loaded (prefetch.HeadStart.tokenizer), else None."""
    if model is not None:
        say(f"loading {model}")
        return load_checkpoint(model, cache=cache, cached_tokenizer=cached_tokenizer)
    digest = default_model.default_model_sha256()
    if cache.has(digest):
        say("loading the default model (Gemma 3 270M) from the converted-weights cache")
        return cache.load(digest, source=default_model.PACKAGE, tokenizer=cached_tokenizer(digest))
    say("converting the default model (Gemma 3 270M) once; later loads use the cache")
    checkpoint = load_checkpoint(default_model.default_model_path(), cache=cache, sha256=digest)
    checkpoint.source = default_model.PACKAGE
    return checkpoint
