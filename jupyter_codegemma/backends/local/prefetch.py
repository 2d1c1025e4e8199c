"""The part of loading a local model that can begin before JAX is imported.

Importing JAX and Flax takes 1.5-2 s of one core, and nothing in it needs the other. Meanwhile
the kernel can fault in the memory the int8 weights will be read into (weights_on_device.HostArena):
zeroing ~260 MB, and compacting memory to find huge pages for it, is most of what filling the
arena costs. Measured on a 2-core AMD EPYC, Gemma 3 270M's 259 MB of int8 matrices read into
fresh pages: 0.45-0.57 s; into pages faulted in during the import: 0.06-0.07 s, the import no slower.

This module imports neither JAX nor the engine. It finds the size without reading the model: the
converted-weights cache's int8 variant of a model loaded before (the default model, or a file whose
hash is remembered); for any other model it does nothing, and the load faults the pages in itself.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from .checkpoints.cache import WeightsCache
from .options import EngineOptions
from .weights_on_device import HostArena, aligned


def reserve_arena(model: str | os.PathLike | None, options: EngineOptions) -> HostArena | None:
    """An empty arena for the model's int8 matrices, its pages being faulted in by a thread, or None
    where the load will not (or may not) put int8 matrices in a host arena. Pass it to Engine.load,
    which uses it or gives it back."""
    if not sys.platform.startswith("linux") or options.dtype not in ("auto", "int8"):
        return None
    if os.environ.get("JAX_PLATFORMS", "cpu").split(",")[0].strip() not in ("", "cpu"):
        return None  # an accelerator: the weights go to its memory
    try:
        cache = WeightsCache(options.cache_dir)
        if model is None:
            from . import default_model

            sha256 = default_model.default_model_sha256()
        elif os.path.isfile(model):
            sha256 = cache.remembered_sha256(model)
        else:
            sha256 = None  # a directory: its key means detecting its format; not worth it here
        if sha256 is None or not cache.has_variant(sha256, "int8"):
            return None
        nbytes = sum(aligned(n) for n in cache.variant_array_sizes(sha256, "int8", np.int8))
        return HostArena(nbytes, populate=True) if nbytes else None
    except Exception:  # noqa: BLE001 - a head start only: the load itself reports what is wrong
        return None
