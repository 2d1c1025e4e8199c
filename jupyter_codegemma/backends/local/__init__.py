"""The JAX/Flax Gemma runtime in this process: the local backend. It imports nothing from Jupyter.

    from jupyter_codegemma.backends.local import Engine
    engine = Engine.load()                       # the default model, Gemma 3 270M
    for piece in engine.generate("def fib(n):"):
        print(piece, end="")
"""

from ..base import Generation, GenerationResult, SamplingParams
from ..errors import CheckpointError, CodeGemmaError, PromptError, SettingsError
from .options import EngineOptions


def load(model=None, options: EngineOptions = EngineOptions(), progress=None):
    """`Engine.load`, begun before JAX is imported: the memory for the int8 weights is faulted in and
    the tokenizer loaded on another core while the import runs (prefetch.py). What the kernel calls."""
    from . import jax_import, prefetch, process

    process.configure_heap()
    head_start = prefetch.start(model, options)
    jax_import.import_jax()
    from .engine import Engine

    return Engine.load(model, options, progress, head_start=head_start)


def __getattr__(name: str):
    # The engine imports JAX (about a second). Importing it on first use keeps the light submodules
    # (default_model, options) light: a process that only needs the model's path does not pay for JAX.
    if name == "Engine":
        from .jax_import import import_jax

        import_jax()
        from .engine import Engine

        return Engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Engine", "EngineOptions", "load", "Generation", "GenerationResult", "SamplingParams",
    "CodeGemmaError", "CheckpointError", "PromptError", "SettingsError",
]
