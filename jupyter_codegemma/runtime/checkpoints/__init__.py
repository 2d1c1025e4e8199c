"""Checkpoint loading: detect the format of a path and return (config, params, tokenizer).

Converted GGUF weights are kept in a cache keyed by the file's sha256, so the second load of
the same file reads float32 arrays instead of dequantizing again.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CheckpointError
from .base import Checkpoint, Params
from .cache import WeightsCache, default_cache_dir
from .gguf import is_gguf, load_gguf

__all__ = ["Checkpoint", "Params", "WeightsCache", "default_cache_dir", "detect_format", "load_checkpoint"]


def detect_format(path: str | os.PathLike) -> str:
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(path, "no such file or directory")
    if path.is_file():
        if is_gguf(path):
            return "gguf"
        if path.stat().st_size < 4:
            raise CheckpointError(path, "the file is empty or truncated")
        raise CheckpointError(path, "not a model file this runtime knows: expected a GGUF file "
                                    "(starting with the bytes 'GGUF')")
    raise CheckpointError(path, "is a directory; loading Hugging Face or Kaggle checkpoint directories "
                                "is not supported yet, give a .gguf file")


def load_checkpoint(path: str | os.PathLike, *, cache: WeightsCache | None = None,
                    sha256: str | None = None) -> Checkpoint:
    """Load any supported checkpoint. `sha256`, when the caller knows it, skips hashing the file."""
    path = Path(path).expanduser()
    fmt = detect_format(path)
    cache = cache if cache is not None else WeightsCache()
    try:
        digest = sha256 or cache.file_sha256(path)
    except OSError as e:
        raise CheckpointError(path, f"cannot read the file: {e.strerror}") from None
    if cache.has(digest):
        return cache.load(digest, source=str(path))
    checkpoint = load_gguf(path) if fmt == "gguf" else None
    checkpoint.sha256 = digest
    try:
        cache.store(checkpoint, digest)
    except OSError:
        pass  # a read-only or full cache directory only costs speed next time
    return checkpoint
