"""Errors the runtime raises on bad input: each says what went wrong, where, and what to do."""

from __future__ import annotations


class CodeGemmaError(Exception):
    """Base class: callers (CLI, kernel) show these as messages, not tracebacks."""


class CheckpointError(CodeGemmaError):
    """A model file or directory that cannot be loaded."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"cannot load model from {self.path}: {problem}")


class PromptError(CodeGemmaError, ValueError):
    """A prompt the model cannot take (empty, or longer than its context)."""


class SettingsError(CodeGemmaError, ValueError):
    """A generation or engine setting out of its range."""
