"""A shared OpenAI-compatible server as the backend (vLLM, llama.cpp's server, Ollama): the kernel is a
thin client. Imports nothing from backends/local, and so never JAX."""

from .client import RemoteEngine, RemoteOptions
from .transport import ServerError, ServerUnavailable

__all__ = ["RemoteEngine", "RemoteOptions", "ServerError", "ServerUnavailable"]
