"""Where the kernel's facts help the model most: the notebook-state set, completed in-process with the
facts nowhere, as a comment block at the top of the prompt, or just above the current line.

    python bench/kernel_context_placement.py [--limit N] [--model PATH]

Each case's namespace is built in this process (evaluation/notebook_state.namespace_in_process), its
facts read with kernel/live_namespace.read_facts, and the prompt made with `with_facts(placement)`;
`allowed_names` goes to the engine where its `complete` takes it (as kernel/comm.py does). Figures:
share of cases passed, mean prompt tokens, and tokens reused from the previous keystroke's prompt when
the current line grows by one character (the KV-cache reuse each placement keeps).
"""

from __future__ import annotations

import argparse
import inspect
import tempfile
import time
from pathlib import Path

from jupyter_codegemma.backends.local import Engine
from jupyter_codegemma.evaluation.notebook_state import load_cases, namespace_in_process
from jupyter_codegemma.kernel.live_namespace import read_facts, with_facts

PLACEMENTS = ("none", "top", "line")


def prompt_for(prefix: str, facts, placement: str) -> str:
    return prefix if placement == "none" else with_facts(prefix, facts, placement)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--placements", default=",".join(PLACEMENTS))
    args = parser.parse_args()
    placements = args.placements.split(",")
    engine = Engine.load(args.model)
    engine.warm_up()
    constrained = "allowed_names" in inspect.signature(engine.complete).parameters
    print(f"model: {engine.info()['model']} on {engine.info()['device']}; allowed_names "
          f"{'passed' if constrained else 'not taken by this engine'}")
    passed = {p: 0 for p in placements}
    tokens = {p: 0 for p in placements}
    reused = {p: 0 for p in placements}
    cases = load_cases("notebook-state", args.limit)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for number, case in enumerate(cases):
            workdir = Path(tmp) / f"case{number}"
            workdir.mkdir()
            namespace = namespace_in_process(case, workdir)
            facts = read_facts(namespace, case.prefix)
            one_less = read_facts(namespace, case.prefix[:-1]) if case.cursor[-1:].isalnum() else facts
            row = []
            for placement in placements:
                prompt = prompt_for(case.prefix, facts, placement)
                extra = {"allowed_names": facts.continuations()} if constrained and placement != "none" else {}
                text = engine.complete(prompt, case.suffix, mode="line", max_new_tokens=24, **extra).wait().text
                ok = case.passes(text)
                passed[placement] += ok
                ids = engine.tokenizer.encode(prompt)
                before = engine.tokenizer.encode(prompt_for(case.prefix[:-1], one_less, placement))
                tokens[placement] += len(ids)
                reused[placement] += common_prefix(before, ids)
                row.append(f"{placement}={'ok' if ok else 'no'} {text[:30]!r}")
            print(f"{case.id:<26} {' | '.join(row)}", flush=True)
    n = len(cases)
    print(f"\n{n} cases, {time.perf_counter() - started:.0f} s")
    print(f"{'placement':<10}{'passed':>8}{'prompt tokens':>15}{'reused (keystroke)':>20}")
    for p in placements:
        print(f"{p:<10}{100 * passed[p] / n:7.1f}%{tokens[p] / n:15.0f}{100 * reused[p] / max(tokens[p], 1):19.1f}%")


if __name__ == "__main__":
    main()
