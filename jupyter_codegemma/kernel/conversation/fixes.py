"""Judging a fix the model proposed for a failing cell before anyone sees it, and showing it as a diff.

A proposal is offered only if it is code, parses, differs from the cell, changes the line that failed
(a runtime error's line in the cell; a syntax error may be caused on an earlier line), and for a
NameError no longer uses the undefined name without defining it.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import re
from typing import Callable

from .prompts import Failure, _user_frames


def parses(code: str, transform: Callable[[str], str] = lambda c: c) -> bool:
    """Whether a cell is valid Python once IPython's syntax (magics, `!cmd`) is transformed."""
    try:
        ast.parse(transform(code))
        return True
    except Exception:  # SyntaxError, ValueError, and whatever a transformer raises
        return False


def failing_line(failure: Failure, cell_files: dict) -> int | None:
    """The 1-based line of the cell where a runtime error was raised (the deepest frame in the cell)."""
    if failure.is_syntax_error:
        return None
    in_cell = [n for f, n in _user_frames(failure.error.__traceback__, cell_files)
               if f.f_code.co_filename in cell_files and cell_files[f.f_code.co_filename] == failure.number]
    return in_cell[-1] if in_cell else None


def undefined_name(error: BaseException) -> str | None:
    if not isinstance(error, NameError) or isinstance(error, UnboundLocalError):
        return None
    name = getattr(error, "name", None)
    if name:
        return name
    match = re.search(r"name '(\w+)' is not defined", str(error))
    return match.group(1) if match else None


def _uses_without_defining(code: str, name: str) -> bool:
    """Whether `code` reads `name` while nothing in it defines it (assignment, def, class, import, for, with)."""
    tree = ast.parse(code)
    loads, defined = set(), set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loads if isinstance(node.ctx, ast.Load) else defined).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    return name in loads and name not in defined


def judge_fix(original: str, proposal: str, transform: Callable[[str], str] = lambda c: c, *,
              error: BaseException | None = None, line: int | None = None) -> str | None:
    """None if `proposal` is a credible fix of `original`, else why not (for the "no confident fix" message).
    `error` is what the cell raised and `line` the cell's line it was raised on, where known."""
    if not proposal.strip():
        return "the model proposed no code"
    if proposal.strip() == original.strip():
        return "the model proposed the same code unchanged"
    if not parses(proposal, transform):
        return "the model's proposal is not valid Python"
    lines = original.splitlines()
    if line is not None and 1 <= line <= len(lines) and lines[line - 1].strip() in \
            {text.strip() for text in proposal.splitlines()}:
        return f"the proposal leaves line {line} (`{lines[line - 1].strip()}`), where the error was raised, as it was"
    name = undefined_name(error) if error is not None else None
    if name is not None:
        try:
            still = _uses_without_defining(transform(proposal), name)
        except SyntaxError:
            still = False
        if still:
            return f"the proposal still uses the undefined name `{name}`"
    return None


def diff(original: str, proposal: str, label: str) -> str:
    lines = difflib.unified_diff(original.rstrip("\n").splitlines(), proposal.rstrip("\n").splitlines(),
                                 f"{label} (as run)", f"{label} (proposed fix)", lineterm="")
    return "\n".join(lines)
