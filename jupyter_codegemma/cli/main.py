"""The `codegemma` command: inspect a model, tokenize, generate.

    codegemma info                          what is loaded, on which device
    codegemma tokenize "def f():"           ids, <bos> first
    codegemma generate "def fib(n):"        streams the continuation
    codegemma generate --jsonl prompts.jsonl  one JSON object out per line in
    codegemma eval --limit 100              HumanEval infilling: pass@1, exact match, latency (evaluation/)
    codegemma grade submitted/              re-run students' exercise code against the tests: a CSV

The model loads once per command. Errors in what the user gave (a missing model file, an empty
or too-long prompt) print one line and exit with status 2; in --jsonl mode a bad line gives an
`{"error": ...}` line in its place, so outputs stay aligned with inputs.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO

from .._version import __version__
from . import eval_command, grade_command, kernel_command, model_commands
from .common import EXIT_USAGE, CliError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codegemma", description="CodeGemma models on a JAX runtime.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model_commands.add_parsers(commands)
    kernel_command.add_parser(commands)
    eval_command.add_parser(commands)
    grade_command.add_parser(commands)
    return parser


COMMANDS = {**model_commands.COMMANDS, "kernel": kernel_command.cmd_kernel, "eval": eval_command.cmd_eval,
            "grade": grade_command.cmd_grade}


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
