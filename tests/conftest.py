"""Shared fixtures. The real default model (Gemma 3 270M) loads once per test session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def pytest_configure(config):
    """Keep compiled programs on disk between runs, as the engine does (see EngineOptions)."""
    from jupyter_codegemma.runtime.checkpoints import default_cache_dir
    from jupyter_codegemma.runtime.engine import configure_compilation_cache

    configure_compilation_cache(default_cache_dir() / "xla")


def oracle_records(kind: str) -> list[dict]:
    """Reference outputs of llama.cpp for the default model (see tests/data/README.md)."""
    with open(DATA / "gemma3_270m_oracle.jsonl", encoding="utf-8") as f:
        return [r for r in map(json.loads, f) if r["kind"] == kind]


@pytest.fixture(scope="session")
def engine():
    from jupyter_codegemma.runtime import Engine

    return Engine.load()
