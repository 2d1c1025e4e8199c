"""Build data/library_lines.json.gz: single lines masked from real third-party code (installed packages).

    python -m jupyter_codegemma.evaluation.library_lines [--per-module 4]

A line qualifies when it is one whole statement that uses a name of its module by attribute or call
(`self.x.y(...)`, `module.func(...)`), 20-90 characters, not a def/class/decorator/comment/docstring.
The cursor is at the line's indentation; the prompt is the 40 lines above it; the namespace is the
module's own globals (as after `from module import *` plus its private names), so the kernel-context
facts can describe what those names hold. Scored by exact match of the line. The lines are chosen
deterministically (every k-th qualifying line of each file) and frozen into the data file, so the set
does not move with the installed versions.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import importlib
import inspect
import json
import re

from .data import DATA_DIR

# Plain-Python modules of packages the project already installs (requests, traitlets, jupyter_client,
# packaging, click): BSD/Apache/MIT licensed; each case keeps 40 lines of context and one line.
MODULES = ("requests.sessions", "requests.models", "requests.adapters", "requests.utils", "traitlets.traitlets",
           "traitlets.config.application", "traitlets.config.configurable", "jupyter_client.manager",
           "jupyter_client.session", "jupyter_client.client", "packaging.version", "packaging.specifiers",
           "click.core", "click.termui", "click.utils")
CONTEXT_LINES = 40
_ATTRIBUTE_USE = re.compile(r"[A-Za-z_]\w*\.[A-Za-z_]\w*")


def qualifying(lines: list[str], i: int) -> bool:
    line = lines[i]
    text = line.strip()
    skipped = ("#", "def ", "class ", "@", "async def ", '"', "'", "return ", "raise ")
    if not 20 <= len(text) <= 90 or text.startswith(skipped):
        return False
    if not _ATTRIBUTE_USE.search(text) or text.endswith((":", ",", "(", "[", "{", "\\")):
        return False
    if i + 1 < len(lines) and lines[i + 1].strip().startswith((".", ")", "]", "}")):
        return False
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


def cases_for(module_name: str, per_module: int) -> list[dict]:
    module = importlib.import_module(module_name)
    source = inspect.getsource(module)
    lines = source.split("\n")
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    strings = {n for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
               for n in range(node.lineno - 1, (node.end_lineno or node.lineno))}
    found = [i for i in range(CONTEXT_LINES, len(lines)) if i not in strings and qualifying(lines, i)]
    if not found:
        return []
    step = max(len(found) // per_module, 1)
    chosen = found[step // 2::step][:per_module]
    out = []
    for i in chosen:
        line = lines[i]
        indent = line[:len(line) - len(line.lstrip())]
        out.append({"id": f"{module_name}:{i + 1}",
                    "setup": f"import importlib as _importlib\nglobals().update(vars(_importlib.import_module("
                             f"{module_name!r})))\ndel _importlib\n",
                    "cells": [], "cursor": "\n".join(lines[i - CONTEXT_LINES:i]) + "\n" + indent,
                    "suffix": "\n" + "\n".join(lines[i + 1:i + 6]), "accept": [line.strip()], "exact": True})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-module", type=int, default=4)
    args = parser.parse_args()
    cases = [c for name in MODULES for c in cases_for(name, args.per_module)]
    path = DATA_DIR / "library_lines.json.gz"
    about = ("Lines masked from installed third-party packages (evaluation/library_lines.py); exact match. "
             "Source excerpts keep their packages' licences (requests: Apache-2.0; traitlets, jupyter_client, "
             "packaging, click: BSD).")
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump({"about": about, "cases": cases}, f, indent=1)
    print(f"{len(cases)} cases -> {path}")


if __name__ == "__main__":
    main()
