"""Completions that need the kernel's state, run in a real kernel: `codegemma eval --task notebook-state`
and `--task library-lines`.

Each case sets up a namespace the visible cells do not show (hidden `setup`: files written in a
temporary directory, modules, objects), runs its visible `cells`, then asks the kernel's comm for a
one-line completion at the end of `cursor`, as the editor would (the visible cells and the current
cell joined as the labextension joins them), once with CodeGemma.kernel_context on and once off.

- notebook-state (data/notebook_state.json): passes when the completion starts with one of `accept`.
- library-lines (data/library_lines.json.gz, made by evaluation/library_lines.py): lines masked from
  installed third-party packages, the module's own globals as the namespace; exact match.
"""

from __future__ import annotations

import gzip
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .data import DATA_DIR
from .report import percentile

KERNEL_SETS = {"notebook-state": "notebook_state.json", "library-lines": "library_lines.json.gz"}
CELL_SEPARATOR = "\n\n"  # how the labextension joins cells (labextension/src/completion/cells.ts)


@dataclass(frozen=True)
class StateCase:
    id: str
    setup: str  # hidden: run before the visible cells, never shown to the model
    cells: tuple[str, ...]  # visible cells above the current one
    cursor: str  # the current cell up to the cursor
    suffix: str
    accept: tuple[str, ...]  # a completion passes when it starts with one of these
    exact: bool = False  # library lines: the completion must be the whole masked line

    @property
    def prefix(self) -> str:
        return CELL_SEPARATOR.join((*self.cells, self.cursor)) if self.cells else self.cursor

    def passes(self, completion: str) -> bool:
        if self.exact:
            return completion.strip() == self.accept[0].strip()
        return any(completion.startswith(a) or completion.lstrip().startswith(a) for a in self.accept)


@dataclass(frozen=True)
class StateResult:
    id: str
    kernel_context: bool
    completion: str
    passed: bool
    context_facts: int
    latency_ms: float

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def load_cases(name: str, limit: int | None = None, stride: int = 1) -> list[StateCase]:
    if name not in KERNEL_SETS:
        raise ValueError(f"unknown kernel set {name!r}; choose one of {', '.join(KERNEL_SETS)}")
    path = DATA_DIR / KERNEL_SETS[name]
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        raw = json.load(f)["cases"]
    cases = [StateCase(id=c["id"], setup=c["setup"], cells=tuple(c["cells"]), cursor=c["cursor"],
                       suffix=c.get("suffix", ""), accept=tuple(c["accept"]), exact=bool(c.get("exact", False)))
             for c in raw]
    cases = cases[::stride]  # every stride-th case: a sample spread over the whole set
    return cases[:limit] if limit is not None else cases


def namespace_in_process(case: StateCase, workdir: Path) -> dict:
    """The case's namespace built in this process (set-up and cells run with `workdir` as the current
    directory and first on sys.path): for checking the set and measuring prompts without a kernel. The
    modules the case wrote are dropped from sys.modules afterwards, so the next case's are fresh."""
    import os
    import sys

    before_dir, before_modules = os.getcwd(), set(sys.modules)
    os.chdir(workdir)
    sys.path.insert(0, str(workdir))
    try:
        namespace: dict = {"__name__": "__main__"}
        exec(case.setup, namespace)  # noqa: S102 - the set's own code, as the kernel would run it
        for cell in case.cells:
            exec(cell, namespace)  # noqa: S102
        return namespace
    finally:
        os.chdir(before_dir)
        sys.path.remove(str(workdir))
        for name in set(sys.modules) - before_modules:
            if str(workdir) in (getattr(sys.modules[name], "__file__", None) or ""):
                del sys.modules[name]


def _cell_ok(reply: dict, what: str) -> None:
    if reply.get("status") != "ok":
        raise RuntimeError(f"{what} failed in the kernel: {reply.get('ename', '')}: {reply.get('evalue', '')}")


def run_cases(cases: Iterable[StateCase], *, model_settings: dict[str, str] | None = None,
              contexts: tuple[bool, ...] = (True, False), max_new_tokens: int = 24,
              on_result: Callable[[StateResult], None] | None = None) -> list[StateResult]:
    """Every case in one real kernel (the namespace reset between cases), under each kernel_context."""
    from ..cli.kernel_client import KernelSession

    results: list[StateResult] = []
    with tempfile.TemporaryDirectory(prefix="codegemma-eval-") as tmp, \
            KernelSession(extensions=["jupyter_codegemma"], startup_timeout=120) as ks:
        comm = ks.open_comm()
        for key, value in (model_settings or {}).items():
            _cell_ok(ks.execute(f"%codegemma set {key}={value}")[0], f"%codegemma set {key}")
        ks.complete(comm, "import os\n", mode="line", timeout=900)  # load and compile before the clock starts
        for number, case in enumerate(cases):
            workdir = Path(tmp) / f"case{number}"
            workdir.mkdir()
            _cell_ok(ks.execute(f"%reset -f\nimport os as _os\n_os.chdir({str(workdir)!r})\ndel _os", timeout=60)[0],
                     "the reset")
            _cell_ok(ks.execute(case.setup, timeout=120)[0], f"{case.id}: the hidden set-up")
            for cell in case.cells:
                _cell_ok(ks.execute(cell, timeout=120)[0], f"{case.id}: a visible cell")
            for on in contexts:
                ks.execute(f"%codegemma set kernel_context={'on' if on else 'off'}")
                sent = time.perf_counter()
                done = ks.complete(comm, case.prefix, case.suffix, mode="line", max_new_tokens=max_new_tokens,
                                   timeout=300)[-1]
                latency = (time.perf_counter() - sent) * 1e3
                if done.get("type") != "done":
                    raise RuntimeError(f"{case.id}: the completion ended with {done}")
                text = done["text"]
                result = StateResult(id=case.id, kernel_context=on, completion=text, passed=case.passes(text),
                                     context_facts=int(done["stats"].get("context_facts", 0)),
                                     latency_ms=round(latency, 1))
                results.append(result)
                if on_result is not None:
                    on_result(result)
    return results


def summary_table(name: str, results: list[StateResult]) -> str:
    rows = [("set", "kernel context", "cases", "passed", "with facts", "mean ms", "p95 ms")]
    for on in (True, False):
        part = [r for r in results if r.kernel_context == on]
        if not part:
            continue
        latencies = [r.latency_ms for r in part]
        share = 100 * sum(r.passed for r in part) / len(part)
        rows.append((name, "on" if on else "off", str(len(part)), f"{share:.1f}%",
                     str(sum(r.context_facts > 0 for r in part)), f"{sum(latencies) / len(latencies):.0f}",
                     f"{percentile(latencies, 95):.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
