"""How often level-3 (model) hints are shown, and correct, on the built-in exercise set.

    python bench/hints.py [--n 5] [--limit 0] [--model PATH]

For each exercise: sample up to n fixes of the broken code (the first greedy), keep those that parse and
change few characters, and show one only if at least two agree (hints.model_fix). "correct" = the shown
fix passes the exercise's tests in the sandbox; "exact" = it equals the reference solution. The widget
also requires the tests to pass before it shows a fix, so in the widget shown-and-wrong is withheld.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from jupyter_codegemma.exercises import builtin_exercises
from jupyter_codegemma.exercises.hints import engine_sampler, model_fix, normalise
from jupyter_codegemma.backends.local import Engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5, help="samples per exercise")
    parser.add_argument("--limit", type=int, default=0, help="only the first N exercises (0: all)")
    parser.add_argument("--model", default=None, help="a GGUF file (default: Gemma 3 270M)")
    args = parser.parse_args()
    exercises = builtin_exercises()
    if args.limit:
        exercises = exercises[: args.limit]
    started = time.perf_counter()
    engine = Engine.load(args.model)
    print(f"model: {engine.info()['model']} on {engine.info()['device']} (loaded in {time.perf_counter() - started:.0f} s)")
    sample = engine_sampler(engine)
    totals: Counter = Counter()
    per_category: dict[str, Counter] = {}
    started = time.perf_counter()
    for ex in exercises:
        fix = model_fix(sample, ex.broken, n=args.n)
        c = per_category.setdefault(ex.category, Counter())
        for counter in (totals, c):
            counter["exercises"] += 1
            counter["samples"] += fix.samples
            counter["parsed"] += fix.parsed
            counter["close"] += fix.close
        if fix.shown:
            correct = ex.run_tests(fix.fix).passed
            exact = normalise(fix.fix) == normalise(ex.solution)
            for counter in (totals, c):
                counter["shown"] += 1
                counter["correct"] += correct
                counter["exact"] += exact
        print(f"{ex.id:24} shown={fix.shown!s:5} {fix.reason}", flush=True)
    seconds = time.perf_counter() - started
    print(f"\nper category (exercises / shown / correct):")
    for cat, c in sorted(per_category.items()):
        print(f"  {cat:22} {c['exercises']:3} {c['shown']:3} {c['correct']:3}")
    t = totals
    print(f"\nexercises {t['exercises']}, samples {t['samples']} ({t['parsed']} parse, {t['close']} parse and change "
          f"few characters)")
    print(f"level-3 fix shown: {t['shown']}/{t['exercises']} ({t['shown'] / t['exercises']:.0%}); correct (tests pass): "
          f"{t['correct']}/{t['shown'] or 1}; exact reference solution: {t['exact']}")
    print(f"withheld (no confident suggestion): {t['exercises'] - t['shown']}; {seconds:.0f} s, "
          f"{seconds / t['exercises']:.1f} s per exercise")


if __name__ == "__main__":
    main()
