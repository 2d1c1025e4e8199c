"""The models that write text, behind one interface (base.Backend): the JAX engine in this process
(local/) or a shared OpenAI-compatible server (remote/). `load_backend` is the one place that picks
and builds one; adding a backend means a folder here and a branch in it.

Importing this package is cheap: each backend's own imports (JAX, for the local one) wait for its load.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from .base import Backend


@dataclasses.dataclass(frozen=True)
class BackendSpec:
    """Which backend to build, from settings: a server URL picks the remote one, else a local model."""

    model: str = ""  # a local model file or directory; "" = the default model (Gemma 3 270M)
    dtype: str = "auto"
    context_len: int = 4096
    devices: int | None = None
    server_url: str = ""  # an OpenAI-compatible server: the kernel becomes a thin client
    server_model: str = ""
    api_key_env: str = "CODEGEMMA_API_KEY"
    server_fim: str = "auto"
    allow_insecure_http: bool = False  # send the API key over plain http:// to a host that is not loopback

    @property
    def remote(self) -> bool:
        return bool(self.server_url)


def load_backend(spec: BackendSpec, progress: Callable[[str], None] | None = None) -> Backend:
    """Build the backend `spec` names: connect to the server, or load the model (the default when none)."""
    if spec.remote:
        from .remote import RemoteEngine, RemoteOptions

        return RemoteEngine.load(RemoteOptions(url=spec.server_url, model=spec.server_model,
                                               api_key_env=spec.api_key_env, fim=spec.server_fim,
                                               context_len=spec.context_len,
                                               allow_insecure_http=spec.allow_insecure_http), progress=progress)
    from .local import EngineOptions, load

    options = EngineOptions(dtype=spec.dtype, cache_len=spec.context_len, devices=spec.devices)
    return load(spec.model or None, options, progress=progress)


__all__ = ["Backend", "BackendSpec", "load_backend"]
