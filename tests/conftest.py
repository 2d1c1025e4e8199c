"""Shared fixtures. The real default model (Gemma 3 270M) loads once per test session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def pytest_configure(config):
    """Keep compiled programs on disk between runs, as the engine does (see EngineOptions)."""
    from jupyter_codegemma.backends.local.checkpoints import default_cache_dir
    from jupyter_codegemma.backends.local.process import configure_compilation_cache

    configure_compilation_cache(default_cache_dir() / "xla")
    # A shell set up for a shared server (docs/deployment.md) would turn every test kernel into a thin
    # client; the tests that want one (test_remote_*.py) set these for their own kernels.
    for name in ("CODEGEMMA_SERVER_URL", "CODEGEMMA_SERVER_MODEL"):
        os.environ.pop(name, None)


def oracle_records(kind: str, reference: str = "llama.cpp") -> list[dict]:
    """Reference outputs for the default model: llama.cpp's (tokenization, and its greedy ids),
    or "float32": transformers' float32 run on the same GGUF dequantized (the logits' reference;
    the same prompts). See tests/data/README.md."""
    name = {"llama.cpp": "gemma3_270m_oracle.jsonl", "float32": "gemma3_270m_public_f32.jsonl"}[reference]
    with open(DATA / name, encoding="utf-8") as f:
        return [r for r in map(json.loads, f) if r["kind"] == kind]


@pytest.fixture(scope="session")
def engine():
    from jupyter_codegemma.backends.local import Engine

    return Engine.load()


@pytest.fixture(scope="module")
def ks():
    """A real kernel (jupyter_client) with the extension loaded, shared by a test module."""
    from jupyter_codegemma.cli.kernel_client import KernelSession

    with KernelSession() as session:
        reply, _ = session.execute("%load_ext jupyter_codegemma")
        assert reply["status"] == "ok"
        yield session


@pytest.fixture(scope="module")
def ks_in_folder(tmp_path_factory):
    """Like `ks`, with the kernel working in a fresh folder (`session.folder`): the exercise widgets write
    their results file beside the notebook, i.e. in the kernel's working directory."""
    from jupyter_codegemma.cli.kernel_client import KernelSession

    folder = tmp_path_factory.mktemp("notebook")
    with KernelSession() as session:
        reply, _ = session.execute(f"import os; os.chdir({str(folder)!r})\n%load_ext jupyter_codegemma")
        assert reply["status"] == "ok"
        session.folder = folder
        yield session


def next_input_payloads(reply: dict) -> list[dict]:
    """The `set_next_input` payloads of an execute reply (a cell the kernel asks to insert)."""
    return [p for p in reply.get("payload", []) if p.get("source") == "set_next_input"]


def stream_text(outputs: list[dict]) -> str:
    """Everything a cell printed (stream messages), in order."""
    return "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
