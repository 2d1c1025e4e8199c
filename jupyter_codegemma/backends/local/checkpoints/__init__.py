"""Checkpoint loading: detect the format of a path and return (config, params, tokenizer).

Three formats, told apart by what is on disk:
- a GGUF file (llama.cpp, Ollama): a file starting with the bytes "GGUF";
- a Hugging Face directory: `config.json` and `*.safetensors` (sharded or not), `tokenizer.model`;
- a Kaggle Flax directory: an orbax checkpoint (`_METADATA`, `manifest.ocdbt`, or an older
  `checkpoint` file), given itself or as the variant directory that holds it next to
  `tokenizer.model`.

Converted weights are kept in a cache, so the second load reads float32 arrays instead of
converting again. The key of a GGUF file is its sha256. The key of a directory is a sha256 over
the format name and, for every file that makes up the checkpoint (config, tensors, tokenizer),
its path relative to the directory, size and modification time: hashing the contents of a
16 GB directory would take longer than converting it, and a copy or an edit in place changes
the stamps, so it never serves stale weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from ...errors import CheckpointError
from .base import Checkpoint, Params
from .cache import WeightsCache, default_cache_dir
from .gguf import is_gguf, load_gguf
from .orbax import ORBAX_MARKERS, find_checkpoint_dir, load_orbax
from .safetensors import is_hf_dir, load_safetensors

__all__ = ["Checkpoint", "Params", "WeightsCache", "default_cache_dir", "detect_format", "directory_key",
           "load_checkpoint"]


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
    if is_hf_dir(path):
        return "safetensors"
    if find_checkpoint_dir(path) is not None:
        return "orbax"
    if (path / "config.json").is_file():
        raise CheckpointError(path, "has a config.json but no *.safetensors files: a Hugging Face checkpoint "
                                    "needs its weights as safetensors (PyTorch .bin files are not read)")
    raise CheckpointError(path, "is a directory that holds no checkpoint this runtime knows: expected a Hugging "
                                "Face directory (config.json + *.safetensors + tokenizer.model) or a Kaggle Flax "
                                f"directory (an orbax checkpoint: {', '.join(ORBAX_MARKERS)}, and tokenizer.model); "
                                "or give a .gguf file")


def directory_key(path: str | os.PathLike, fmt: str, overrides: dict | None = None) -> str:
    """The converted-weights cache key of a checkpoint directory (see the module docstring)."""
    from . import orbax, safetensors

    path = Path(path).expanduser().resolve()
    files = safetensors.relevant_files(path) if fmt == "safetensors" else orbax.relevant_files(path)
    digest = hashlib.sha256(f"{fmt}\n{path}\n".encode())
    for f in files:
        stat = f.stat()
        digest.update(f"{os.path.relpath(f, path)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    if overrides:
        digest.update(json.dumps(overrides, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def load_checkpoint(path: str | os.PathLike, *, cache: WeightsCache | None = None,
                    sha256: str | None = None, overrides: dict | None = None,
                    cached_tokenizer: Callable[[str], Any] | None = None) -> Checkpoint:
    """Load any supported checkpoint. `sha256`, when the caller knows it, skips hashing the file.
    `cached_tokenizer(sha256)`: the tokenizer of that converted-weights entry if it is already
    loaded (prefetch.HeadStart.tokenizer), else None.

    `overrides` replaces config fields a Kaggle orbax checkpoint cannot carry (it has no config;
    see `orbax.infer_config`), e.g. `{"sliding_window": 8}`; other formats ignore it.
    """
    path = Path(path).expanduser()
    fmt = detect_format(path)
    cache = cache if cache is not None else WeightsCache()
    try:
        if fmt == "gguf":
            digest = sha256 or cache.file_sha256(path)
        else:
            digest = sha256 or directory_key(path, fmt, overrides if fmt == "orbax" else None)
    except OSError as e:
        raise CheckpointError(path, f"cannot read the file: {e.strerror}") from None
    if cache.has(digest):
        return cache.load(digest, source=str(path), tokenizer=cached_tokenizer and cached_tokenizer(digest))
    if fmt == "gguf":
        checkpoint = load_gguf(path)
    elif fmt == "safetensors":
        checkpoint = load_safetensors(path)
    else:
        checkpoint = load_orbax(path, overrides=overrides)
    checkpoint.sha256 = digest
    try:
        cache.store(checkpoint, digest)
    except OSError:
        pass  # a read-only or full cache directory only costs speed next time
    return checkpoint
