"""Level-3 hints with the default model: how often a verified fix is shown, whether it is right, how fast.

    nice python bench/hints.py [--draws 200] [--limit 0] [--baseline 5] [--n 3] [--model PATH] [--search-only]

Two sets: the built-in exercises, and `--draws` seeded generator draws (a built-in solution broken by
`inject_error` with a random category). For each broken program, the level-3 pipeline of the widget runs
as `service_fix_provider` runs it, on this process's engine: the repair search (repair.py), its verified
fixes ranked by the model's log-likelihood (`Engine.score`), and the model's own samples when the search
finds nothing. Reported: the share with a fix shown; that every fix shown passes the tests (checked again
here with the ordinary sandbox, one process per fix); the share equal to the reference solution; the
time to the hint (median, 90th percentile); and the model's share — how often its ranking, or its
samples, chose a fix that edit size alone would not have.

The reference, in the same process: the previous level 3 (`hints.model_fix`: five samples, two must
agree, then the tests) on the first `--baseline` built-in exercises.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time

from jupyter_codegemma.backends.local import Engine
from jupyter_codegemma.exercises import builtin_exercises
from jupyter_codegemma.exercises.generator import GENERATED_CATEGORIES, NoSiteError, inject_error
from jupyter_codegemma.exercises.hints import engine_sampler, model_fix, normalise
from jupyter_codegemma.exercises.repair import engine_scorer, model_samples, search_repairs
from jupyter_codegemma.exercises.sandbox import run_tests


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return f"{names[0]}, {len(os.sched_getaffinity(0))} cores" if names else platform.processor()
    except OSError:
        return platform.processor() or platform.machine()


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the sandboxes): less sensitive to a loaded
    machine than the wall clock, which is what a student waits."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def draws(exercises, count: int, seed: int = 0):
    """`count` (id, broken, solution, tests) from the built-in solutions, each broken in a random category."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        ex = rng.choice(exercises)
        for category in rng.sample(GENERATED_CATEGORIES, len(GENERATED_CATEGORIES)):
            try:
                broken = inject_error(ex.solution, category, seed=len(out))
            except NoSiteError:
                continue
            out.append((f"{ex.id}/{category}", broken, ex.solution, ex.tests))
            break
    return out


def run_set(name: str, items, engine, n: int) -> dict:
    """`engine` None: the search alone (no ranking by the model, no samples): what the model adds is the
    difference to a run with it."""
    scorer = engine_scorer(engine) if engine is not None else None
    sample = engine_sampler(engine) if engine is not None else None
    times, cpu, shown, correct, exact, model_pick, by_model, sampled = [], [], 0, 0, 0, 0, 0, 0
    for item_id, broken, solution, tests in items:
        started, cpu_started = time.perf_counter(), cpu_seconds()
        found = search_repairs(broken, tests, scorer=scorer,
                               samples=(lambda: model_samples(sample, broken, n=n)) if sample else None)
        times.append(time.perf_counter() - started)
        cpu.append(cpu_seconds() - cpu_started)
        best = found.best
        if best is not None:
            shown += 1
            correct += run_tests(best.source, tests).passed  # checked again, independently of the search
            exact += normalise(best.source) == normalise(solution)
            model_pick += found.model_changed_pick or best.origin == "model sample"
            by_model += found.ranked_by != "edit size"
            sampled += best.origin == "model sample"
        what = "; ".join(best.what) if best else "no fix (" + "; ".join(found.notes or ["nothing passed"]) + ")"
        print(f"  {item_id:40} {times[-1]:6.2f} s ({cpu[-1]:6.2f} s CPU)  {len(found.fixes):2} verified  {what}",
              flush=True)
    total = len(items)
    q = statistics.quantiles(times, n=10) if len(times) > 1 else times * 9
    print(f"{name}: level-3 fix shown {shown}/{total} ({shown / total:.0%}); passing the tests {correct}/{shown or 1} "
          f"({correct / (shown or 1):.0%}); the reference solution {exact}/{shown or 1}\n"
          f"  time to the hint: median {statistics.median(times):.2f} s, 90th percentile {q[8]:.2f} s, "
          f"max {max(times):.2f} s; CPU time (this process and its sandboxes, all threads): median "
          f"{statistics.median(cpu):.2f} s\n"
          f"  model's share: ranked by the model {by_model}, its pick differs from edit size alone {model_pick} "
          f"({model_pick / (shown or 1):.0%} of fixes shown), from its samples {sampled}", flush=True)
    return {"shown": shown, "total": total, "median": statistics.median(times)}


def baseline(exercises, engine, n: int) -> None:
    sample = engine_sampler(engine)
    shown, times = 0, []
    for ex in exercises:
        started = time.perf_counter()
        fix = model_fix(sample, ex.broken, n=n, verify=lambda code, ex=ex: run_tests(code, ex.tests).passed)
        times.append(time.perf_counter() - started)
        shown += fix.shown
    print(f"reference (previous level 3, model_fix, n={n}) on {len(exercises)} built-in exercises: shown "
          f"{shown}/{len(exercises)}; median {statistics.median(times):.1f} s per exercise", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=200, help="seeded generator draws")
    parser.add_argument("--limit", type=int, default=0, help="only the first N built-in exercises (0: all)")
    parser.add_argument("--baseline", type=int, default=5, help="built-in exercises for the reference (0: none)")
    parser.add_argument("--n", type=int, default=3, help="model samples when the search finds nothing")
    parser.add_argument("--model", default=None, help="a GGUF file (default: Gemma 3 270M)")
    parser.add_argument("--search-only", action="store_true", help="the repair search alone, without a model")
    args = parser.parse_args()
    exercises = builtin_exercises()
    if args.search_only:
        print(f"CPU: {cpu_name()}; load average {os.getloadavg()[0]:.1f}\nthe search alone: no model")
        run_set("built-in exercises", [(e.id, e.broken, e.solution, e.tests) for e in exercises], None, 0)
        run_set(f"{args.draws} generator draws", draws(exercises, args.draws), None, 0)
        return
    started = time.perf_counter()
    engine = Engine.load(args.model)
    info = engine.info()
    print(f"CPU: {cpu_name()}; load average {os.getloadavg()[0]:.1f}\nmodel: {info['model']} on {info['device']} ({info['dtype']}), loaded in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    engine.score(["```python\nx = 1\n", "```python\nx = 2\n"])  # compiles the scoring programs of short code
    print(f"scoring warm-up (compilation, or the persistent cache): {time.perf_counter() - started:.1f} s")
    built_in = [(ex.id, ex.broken, ex.solution, ex.tests) for ex in exercises[: args.limit or None]]
    run_set("built-in exercises", built_in, engine, args.n)
    if args.draws:
        run_set(f"{args.draws} generator draws", draws(exercises, args.draws), engine, args.n)
    if args.baseline:
        baseline(exercises[: args.baseline], engine, args.n)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
