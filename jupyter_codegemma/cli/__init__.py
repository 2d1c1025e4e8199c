"""The `codegemma` command, one module per group of sub-commands (main.py parses and dispatches)."""

from .main import main

__all__ = ["main"]
