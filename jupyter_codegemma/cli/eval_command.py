"""`codegemma eval`: HumanEval infilling (and the other sets of evaluation/), pass@1 and latency."""

from __future__ import annotations

import json
import sys
from typing import IO

from .common import CliError, add_model_options, load_engine


def add_parser(commands) -> None:
    from ..evaluation.data import BENCHMARKS
    from ..evaluation.runner import PROMPT_MODES

    from ..evaluation.notebook_state import KERNEL_SETS

    ev = commands.add_parser("eval", help="HumanEval infilling: pass@1, exact match and latency of completions")
    ev.add_argument("--task", action="append", choices=(*BENCHMARKS, *KERNEL_SETS), metavar="NAME",
                    help=f"benchmark: {', '.join(BENCHMARKS)}; or, run in a real kernel with and without the "
                    f"kernel's facts: {', '.join(KERNEL_SETS)} (repeatable; default single-line)")
    ev.add_argument("--kernel-context", choices=("both", "on", "off"), default="both",
                    help="for the kernel sets: CodeGemma.kernel_context on, off, or both (default)")
    ev.add_argument("--limit", type=int, default=None, metavar="N", help="the first N tasks of each benchmark")
    ev.add_argument("--stride", type=int, default=1, metavar="K",
                    help="every K-th task: a sample spread over all problems (applied before --limit)")
    ev.add_argument("--task-id", action="append", default=[], metavar="ID",
                    help="only this task, e.g. SingleLineInfilling/HumanEval/0/L0 (repeatable)")
    ev.add_argument("--mode", choices=PROMPT_MODES, default="auto",
                    help="prompt: auto (PSM with FIM tokens, else prefix-only), psm or spm (FIM models)")
    ev.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                    help="default: 48 for single-line, 160 for multi-line and random spans")
    ev.add_argument("--rank-by-suffix", choices=("on", "off"), default="off",
                    help="a model without FIM: score several passing suggestions followed by the code after the "
                    "gap and take the likeliest (default off)")
    ev.add_argument("--timeout", type=float, default=15.0, metavar="S", help="wall-clock seconds for a task's tests")
    ev.add_argument("--save", metavar="FILE", help="append one JSON line per task as it finishes (kept if interrupted)")
    ev.add_argument("--json", action="store_true", help="print the summaries and every task's result as JSON")
    add_model_options(ev)


def cmd_eval(args, out: IO[str]) -> int:
    import dataclasses
    import time

    from .. import evaluation
    from ..evaluation.scoring import DEFAULT_LIMITS

    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise CliError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if args.timeout <= 0:
        raise CliError(f"--timeout must be positive, got {args.timeout}")
    from ..evaluation.notebook_state import KERNEL_SETS

    kernel_sets = [name for name in (args.task or ()) if name in KERNEL_SETS]
    if kernel_sets:
        if len(kernel_sets) != len(args.task) or args.task_id:
            raise CliError(f"{', '.join(KERNEL_SETS)} run in a kernel: name them without the HumanEval benchmarks "
                           "or --task-id")
        return _eval_in_kernel(args, kernel_sets, out)
    try:  # bad selections fail before the model loads
        selected = evaluation.select_tasks(args.task or (), tuple(args.task_id), limit=args.limit, stride=args.stride)
    except ValueError as e:
        raise CliError(str(e)) from None
    limits = dataclasses.replace(DEFAULT_LIMITS, wall_s=args.timeout)
    options = evaluation.EvalOptions(mode=args.mode, max_new_tokens=args.max_new_tokens, limits=limits,
                                     rank_by_suffix=args.rank_by_suffix == "on")
    engine = load_engine(args)
    engine.warm_up()
    save = open(args.save, "a", encoding="utf-8") if args.save else None
    summaries, details = [], []
    try:
        for name, tasks in selected.items():
            started, done = time.perf_counter(), []

            def progress(result, name=name, total=len(tasks), done=done, started=started):
                done.append(result.passed)
                if save is not None:
                    save.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
                    save.flush()
                if len(done) % 25 == 0 or len(done) == total:
                    print(f"codegemma: {name} {len(done)}/{total}, pass@1 so far {100 * sum(done) / len(done):.1f}%, "
                          f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)

            try:
                summary, results = evaluation.evaluate(engine, name, tasks, options, progress)
            except ValueError as e:  # a prompt mode the model cannot take
                raise CliError(str(e)) from None
            summaries.append(summary)
            details.extend(r.to_json() for r in results)
    finally:
        if save is not None:
            save.close()
    info = engine.info()
    if args.json:
        print(json.dumps({"model": info["model"], "device": info["device"], "dtype": info["dtype"], "fim": info["fim"],
                          "summaries": [s.to_json() for s in summaries], "results": details},
                         ensure_ascii=False), file=out)
    else:
        print(f"{info['model']} on {info['device']} ({info['dtype']}), FIM: {'yes' if info['fim'] else 'no'}", file=out)
        print(evaluation.format_table(summaries), file=out)
        if not info["fim"]:
            print("this model has no FIM tokens: it saw the code before the gap only (prefix-only)", file=out)
    return 0


def _eval_in_kernel(args, names: list[str], out: IO[str]) -> int:
    """The notebook-state and library-line sets: each case in a real kernel, kernel_context on and/or off."""
    from ..evaluation import notebook_state

    if args.stride < 1:
        raise CliError(f"--stride must be at least 1, got {args.stride}")
    contexts = {"both": (True, False), "on": (True,), "off": (False,)}[args.kernel_context]
    settings = {"dtype": args.dtype, "context_len": str(args.context)}
    if args.model:
        settings["model"] = args.model
    save = open(args.save, "a", encoding="utf-8") if args.save else None
    tables, details = [], []
    try:
        for name in names:
            cases = notebook_state.load_cases(name, args.limit, args.stride)

            def progress(result, name=name, done=[]):
                done.append(result)
                if save is not None:
                    save.write(json.dumps({"set": name, **result.to_json()}, ensure_ascii=False) + "\n")
                    save.flush()
                if len(done) % 10 == 0:
                    print(f"codegemma: {name} {len(done)}/{len(cases) * len(contexts)}", file=sys.stderr, flush=True)

            results = notebook_state.run_cases(cases, model_settings=settings, contexts=contexts,
                                               max_new_tokens=args.max_new_tokens or 24, on_result=progress)
            tables.append(notebook_state.summary_table(name, results))
            details.extend({"set": name, **r.to_json()} for r in results)
    finally:
        if save is not None:
            save.close()
    if args.json:
        print(json.dumps({"results": details}, ensure_ascii=False), file=out)
    else:
        print("\n\n".join(tables), file=out)
    return 0
