"""The part of loading a local model that can begin before JAX is imported.

Importing JAX and Flax takes 1.2-2 s of one core, and nothing in it needs the other. Meanwhile, for a
model loaded before, a head start:

- the memory the int8 weights will be read into (weights_on_device.HostArena) is faulted in by a
  thread: zeroing ~260 MB, and compacting memory to find huge pages for it, is most of what
  filling the arena costs. Measured on a 2-core AMD EPYC, Gemma 3 270M's 259 MB of int8 matrices
  read into fresh pages: 0.45-0.57 s; into pages faulted in during the import: 0.06-0.07 s.
- the tokenizer is loaded by another thread (SentencePiece lets go of the GIL while it builds its
  model): 0.13-0.19 s that no longer follow the import.

Neither slows the import measurably. This module imports neither JAX nor the engine, and finds what
it needs without reading the model: the converted-weights cache's entry and its int8 variant (a
GGUF file's entry once its hash is remembered, after its first load; a checkpoint directory's by its
files' names, sizes and times). For any other model it does nothing, and the load does all of it itself.
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import threading
from pathlib import Path

import numpy as np

from .checkpoints.cache import INT8_VARIANT, WeightsCache
from .options import EngineOptions
from .weights_on_device import HostArena, aligned


class HeadStart:
    """What a load began before JAX was imported. Pass it to Engine.load, which takes what it can
    use and gives back the rest (`release`)."""

    def __init__(self, sha256: str | None = None, arena: HostArena | None = None,
                 tokenizer: concurrent.futures.Future | None = None):
        self.sha256 = sha256  # the converted-weights entry these are for
        self.arena = arena
        self._tokenizer = tokenizer

    def tokenizer(self, sha256: str):
        """The entry's tokenizer, loaded in the background, or None: another entry, or its load failed
        (the caller loads it again and reports what is wrong)."""
        if self._tokenizer is None or sha256 != self.sha256:
            return None
        try:
            return self._tokenizer.result()
        except Exception:  # noqa: BLE001 - reported by the load that follows
            return None

    def release(self) -> None:
        """Give back what the load did not use."""
        if self.arena is not None:
            self.arena.release_if_unused()


def start(model: str | os.PathLike | None, options: EngineOptions) -> HeadStart:
    """Begin loading `model` (None: the default model) in background threads, where the
    converted-weights cache holds it; an empty head start where it does not."""
    try:
        cache = WeightsCache(options.cache_dir)
        if model is None:
            from . import default_model

            sha256, source = default_model.default_model_sha256(), default_model.PACKAGE
        else:
            from .checkpoints import detect_format, directory_key

            path = Path(model).expanduser()
            source = str(path)  # what load_checkpoint names it
            fmt = detect_format(path)  # file names and a GGUF file's first bytes only
            # The key load_checkpoint files it under: a file's remembered hash (None until it was
            # hashed once), a directory's from its files' names, sizes and times.
            sha256 = cache.remembered_sha256(path) if fmt == "gguf" else directory_key(path, fmt)
        if sha256 is None or not cache.has(sha256):
            return HeadStart()
        tokenizer = _in_thread(_load_tokenizer, cache.entry_dir(sha256) / "tokenizer.model", source)
        return HeadStart(sha256, _arena(cache, sha256, options), tokenizer)
    except Exception:  # noqa: BLE001 - a head start only: the load itself reports what is wrong
        return HeadStart()


def _arena(cache: WeightsCache, sha256: str, options: EngineOptions) -> HostArena | None:
    """An empty arena for the int8 matrices, its pages being faulted in, or None where the load will
    not (or may not) put int8 matrices in a host arena."""
    if not sys.platform.startswith("linux") or options.dtype not in ("auto", "int8"):
        return None
    if os.environ.get("JAX_PLATFORMS", "cpu").split(",")[0].strip() not in ("", "cpu"):
        return None  # an accelerator: the weights go to its memory
    if not cache.has_variant(sha256, INT8_VARIANT):
        return None
    nbytes = sum(aligned(n) for n in cache.variant_array_sizes(sha256, INT8_VARIANT, np.int8))
    return HostArena(nbytes, populate=True) if nbytes else None


def _load_tokenizer(path: Path, source: str):
    from .tokenizer import Tokenizer

    return Tokenizer.from_serialized(path.read_bytes(), source=source)


def _in_thread(fn, *args) -> concurrent.futures.Future:
    """fn(*args) in a daemon thread of its own (an executor's threads would be joined at exit)."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def run():
        try:
            future.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to whoever asks for the result
            future.set_exception(e)

    threading.Thread(target=run, name="codegemma-head-start", daemon=True).start()
    return future
