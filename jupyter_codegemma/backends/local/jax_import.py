"""Importing JAX without reading every installed distribution's metadata.

While it is imported, JAX looks for a ROCm plugin by parsing the metadata of every distribution
installed (`jax._src.numpy.array_constructors`): 0.09-0.14 s of a kernel's start with this
project's 199 distributions, more in a large conda environment. Whether a distribution can be
such a plugin (`jax-rocm*-plugin`) shows in the name of its metadata directory
(`jax_rocm7_plugin-0.8.0.dist-info`), which costs nothing to read. So while JAX is imported, the
importing thread's `importlib.metadata.distributions()` leaves out the distributions whose
directory names cannot be one; every other thread, and everything after the import, sees all of
them. A distribution found some other way than by a directory (no path to look at) is kept.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import threading


def import_jax() -> None:
    """Import JAX (if it is not imported yet), showing its ROCm plugin search only the
    distributions that can be a ROCm plugin."""
    if "jax" in sys.modules:
        return
    everything = importlib.metadata.distributions
    importing = threading.get_ident()
    narrowing = True

    def distributions(**kwargs):
        found = everything(**kwargs)
        if not narrowing or threading.get_ident() != importing:
            return found
        return (dist for dist in found if _may_be_rocm_plugin(dist))

    importlib.metadata.distributions = distributions
    try:
        import jax  # noqa: F401
    finally:
        narrowing = False
        importlib.metadata.distributions = everything


def _may_be_rocm_plugin(dist: importlib.metadata.Distribution) -> bool:
    path = getattr(dist, "_path", None)  # a PathDistribution's metadata directory
    if path is None:
        return True
    return os.path.basename(str(path)).lower().replace("-", "_").startswith("jax_rocm")
