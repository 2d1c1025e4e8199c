"""A real llama-cpp-python OpenAI-compatible server on loopback, serving the default GGUF file.

    with LlamaServer() as server:        # a free port, a random API key (alias="x-it": named as an -it model)
        server.url, server.api_key
        server.kill(); server.start()    # the same port again

Started with `--interrupt_requests false`: by default llama-cpp-python ends a running stream as soon
as another request waits, which is not what a shared server for a class should do (docs/deployment.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_gguf() -> str:
    from jupyter_codegemma.backends.local.default_model import default_model_path

    return str(default_model_path())


class LlamaServer:
    def __init__(self, *, port: int | None = None, n_ctx: int = 4096, log_dir: Path | None = None,
                 alias: str | None = None, chat_format: str | None = None):
        # find_spec looks without importing: the server runs in its own process, not in pytest's.
        if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("sse_starlette") is None:
            pytest.skip("llama-cpp-python[server] is not installed (`make llama-cpp` builds and installs it)")
        self.port = port or free_port()
        self.api_key = "test-" + secrets.token_hex(8)
        self.url = f"http://127.0.0.1:{self.port}"
        self.n_ctx = n_ctx
        self.alias = alias  # the model's name in /v1/models (e.g. one ending in "-it": an instruction model)
        self.chat_format = chat_format  # "gemma": the template its chat route applies (the GGUF carries none)
        self.log_path = (log_dir or Path(os.environ.get("TMPDIR", "/tmp"))) / f"llama-server-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> "LlamaServer":
        command = [sys.executable, "-m", "llama_cpp.server", "--model", default_gguf(), "--host", "127.0.0.1",
                   "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--n_threads", "2",
                   "--interrupt_requests", "false", "--api_key", self.api_key]
        if self.alias:
            command += ["--model_alias", self.alias]
        if self.chat_format:
            command += ["--chat_format", self.chat_format]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.process.returncode}: {self.log_tail()}")
            try:
                request = urllib.request.Request(f"{self.url}/v1/models",
                                                 headers={"Authorization": f"Bearer {self.api_key}"})
                with urllib.request.urlopen(request, timeout=5) as response:
                    json.load(response)
                return self
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(0.3)
        self.kill()
        raise TimeoutError(f"llama_cpp.server did not answer within {timeout} s: {self.log_tail()}")

    def kill(self) -> None:
        """Stop the server at once, as a crash or a killed pod would (no graceful end of streams)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()
