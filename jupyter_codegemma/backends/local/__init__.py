"""The JAX/Flax Gemma runtime in this process: the local backend. It imports nothing from Jupyter.

    from jupyter_codegemma.backends.local import Engine
    engine = Engine.load()                       # the default model, Gemma 3 270M
    for piece in engine.generate("def fib(n):"):
        print(piece, end="")
"""

from ..base import Generation, GenerationResult, SamplingParams
from ..errors import CheckpointError, CodeGemmaError, PromptError, SettingsError
from .engine import Engine
from .options import EngineOptions

__all__ = [
    "Engine", "EngineOptions", "Generation", "GenerationResult", "SamplingParams",
    "CodeGemmaError", "CheckpointError", "PromptError", "SettingsError",
]
