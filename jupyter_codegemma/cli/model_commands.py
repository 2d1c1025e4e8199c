"""`codegemma info | tokenize | generate | complete | demo`: the model, run in this process."""

from __future__ import annotations

import json
import os
import sys
from typing import IO

from .common import (CliError, add_io_options, add_model_options, each_jsonl_line, line_settings,
                     load_engine)


def add_parsers(commands) -> None:
    info = commands.add_parser("info", help="the model, its architecture, device, dtype, size, FIM support")
    add_model_options(info)
    info.add_argument("--json", action="store_true", help="print a JSON object")

    tokenize = commands.add_parser("tokenize", help="text -> token ids (<bos> first)")
    tokenize.add_argument("text", nargs="?", help="the text (or use --jsonl with {\"text\": ...} lines)")
    add_model_options(tokenize)
    add_io_options(tokenize)

    generate = commands.add_parser("generate", help="continue a prompt")
    generate.add_argument("prompt", nargs="?", help="the prompt text (or use --jsonl)")
    add_model_options(generate)
    sampling = generate.add_argument_group("sampling")
    sampling.add_argument("--max-new-tokens", type=int, default=128, metavar="N")
    sampling.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    sampling.add_argument("--top-k", type=int, default=None, metavar="K")
    sampling.add_argument("--top-p", type=float, default=None, metavar="P")
    sampling.add_argument("--seed", type=int, default=0)
    generate.add_argument("--truncate", action="store_true",
                          help="drop the start of a prompt that does not fit the context (default: refuse it)")
    add_io_options(generate)
    complete = commands.add_parser("complete", help="fill in code at a cursor (FIM where the model has it)")
    where = complete.add_argument_group("the cursor: --prefix/--suffix, or --file/--line/--col")
    where.add_argument("--prefix", help="the code before the cursor")
    where.add_argument("--suffix", default=None, help="the code after the cursor (default: none)")
    where.add_argument("--file", metavar="PATH", help="a source file; the cursor is at --line/--col")
    where.add_argument("--line", type=int, metavar="L", help="1-based line of the cursor in --file")
    where.add_argument("--col", type=int, metavar="C", help="1-based column: the cursor is before character C")
    add_model_options(complete)
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
    add_io_options(complete)

    demo = commands.add_parser("demo", help="load the model and generate a few completions, with timings")
    add_model_options(demo)


def cmd_info(args, out: IO[str]) -> int:
    engine = load_engine(args)
    info = engine.info()
    if args.json:
        print(json.dumps(info), file=out)
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {value}", file=out)
    return 0


def cmd_tokenize(args, out: IO[str]) -> int:
    if (args.text is None) == (args.jsonl is None):
        raise CliError("give either TEXT or --jsonl FILE")
    engine = load_engine(args)
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

    return each_jsonl_line(args.jsonl, tokenize_line, out)


_PER_LINE_SETTINGS = ("max_new_tokens", "temperature", "top_k", "top_p", "seed")


def _sampling(settings: dict):
    from ..backends.base import SamplingParams

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
    engine = load_engine(args)
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
        settings = line_settings(defaults, item, _PER_LINE_SETTINGS)
        return _generate_one(engine, prompt, settings, bool(item.get("truncate", args.truncate)), None).to_json()

    return each_jsonl_line(args.jsonl, generate_line, out)


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
    engine = load_engine(args)
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
        settings = line_settings(defaults, item, _COMPLETE_SETTINGS)
        return _complete_one(engine, item["prefix"], item.get("suffix", ""), settings).to_json()

    return each_jsonl_line(args.jsonl, complete_line, out)


DEMO_PROMPTS = (
    'def is_palindrome(text: str) -> bool:\n    """Return True if text reads the same backwards."""\n',
    "import numpy as np\n\n# the mean of each column of a 2-D array\ndef column_means(a):\n",
)


def cmd_demo(args, out: IO[str]) -> int:
    """Headless: the same engine the kernel uses, with what a user waits for at each step."""
    import time

    started = time.perf_counter()
    engine = load_engine(args)
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


COMMANDS = {"info": cmd_info, "tokenize": cmd_tokenize, "generate": cmd_generate, "complete": cmd_complete,
            "demo": cmd_demo}
