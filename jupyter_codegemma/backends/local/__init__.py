"""The JAX/Flax Gemma runtime. It imports nothing from Jupyter.

    from jupyter_codegemma.backends.local import Engine
    engine = Engine.load()                       # the default model, Gemma 3 270M
    for piece in engine.generate("def fib(n):"):
        print(piece, end="")
"""

from .engine import Engine, EngineOptions, Generation, GenerationResult
from ..errors import CheckpointError, CodeGemmaError, PromptError, SettingsError
from .sampler import SamplingParams

__all__ = [
    "Engine", "EngineOptions", "Generation", "GenerationResult", "SamplingParams",
    "CodeGemmaError", "CheckpointError", "PromptError", "SettingsError",
]
