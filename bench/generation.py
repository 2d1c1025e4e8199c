"""How often `%%codegemma` answers and `%codegemma explain` explanations repeat themselves: before and
after the runaway stop (backends/repetition.py), with or without a repetition penalty.

    python bench/generation.py [--repetition-penalty P [P ...]] [--repetition-window W]
                               [--only generate|explain] [--limit N] [--check N] [--full] [--model PATH]
                               [--json results.json]

The set (bench/data/generation_set.json): requests a notebook user types under `%%codegemma`, some
with the code cells before them, and failing cells as `%codegemma explain` sees them. The failing
cells are run here, so the exception, its traceback and the values of the names involved are real;
the prompts are built by the commands' own functions (kernel/prompts.py, kernel/conversation/prompts.py
and limits.py) and the answers shaped by the same shapes, with the same token budgets
(CodeGemma.max_new_tokens, explain_max_new_tokens) and sampling (CodeGemma.temperature, seed and the
repetition penalty of each kind, CodeGemma.penalty_for, unless --repetition-penalty sets one for all).

Each request is generated once, raw: shaped as the command shapes it but without `stop_runaway`, so
it ends where the shape ends it (a closed code fence, a stop mark), at <eos> or at the token limit.
Greedy decoding is deterministic, so the answer the command shows now (with `stop_runaway`) is what
the same shape makes of the raw text up to its first repeat; both figures come from one generation.
To save time a raw generation is stopped 2 lines (or 160 characters) after its first repeat, when a
runaway is certain (--full: run it to the end); the "before" figures are then a lower bound.
`--check N` runs the real stopped path for N requests that repeated and compares.

Reported: the share of answers with a repeated block (`repeated_block`: the same 2+ consecutive
non-blank lines twice) and with any runaway (`repetition.cut_runaway`), before and after; per request
its length in tokens and how it ended. `--repetition-penalty default 1.0` runs a second pass with the
penalty off; it reuses the first pass's answers where a kind's sampling is the same (explanations,
whose default penalty is off), so only the `%%codegemma` requests run again. `--only`, `--limit` run less.
"""

from __future__ import annotations

import argparse
import ast
import json
import linecache
import subprocess
import time
import zlib
from pathlib import Path

SET = Path(__file__).parent / "data" / "generation_set.json"
EARLY_LINES = 2  # a raw generation goes on this many lines past its first repeat (then it is certain)
EARLY_CHARS = 160  # or this many characters (a paragraph of prose is one line)
CELL_DIR = "/tmp/ipykernel_4242"  # where ipykernel compiles cells (a fixed pid: the same prompts each run)


def repeated_block(text: str, lines: int = 2) -> bool:
    """Whether the same `lines` (or more) consecutive non-blank lines appear twice, without overlapping.
    Trailing spaces aside; indentation counts. Any longer repeated block contains a repeated pair."""
    body = [line.rstrip() for line in text.split("\n") if line.strip()]
    first: dict[tuple[str, ...], int] = {}
    for i in range(len(body) - lines + 1):
        block = tuple(body[i:i + lines])
        if block in first and i - first[block] >= lines:
            return True
        first.setdefault(block, i)
    return False


def parses(code: str) -> bool:
    """Whether an answer is valid Python (a rough sign of a usable %%codegemma answer, not of a right one)."""
    try:
        ast.parse(code)
        return bool(code.strip())
    except (SyntaxError, ValueError):
        return False


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


# --- the failing cells, as the kernel records them --------------------------------------------------

def run_failing_cells(setup: list[str], cell: str):
    """Run the setup cells, then `cell`, as numbered notebook cells: (Failure, cell files) as the
    kernel's FailureRecorder and `shell.compile._filename_map` would have them."""
    from jupyter_codegemma.kernel.conversation import prompts as cv

    namespace: dict = {"__name__": "__main__"}
    files: dict[str, int] = {}
    for number, source in enumerate([*setup, cell], start=1):
        filename = f"{CELL_DIR}/{zlib.crc32(source.encode())}.py"
        files[filename] = number
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            exec(compile(source, filename, "exec"), namespace)
        except Exception as error:  # noqa: BLE001 - the point of the cell
            if number <= len(setup):
                raise RuntimeError(f"setup cell {number} failed: {error!r}") from error
            if error.__traceback__ is not None:
                error = error.with_traceback(error.__traceback__.tb_next)  # this function's frame: IPython's
            return cv.Failure(error, source, number), files
    raise RuntimeError(f"the cell ran without an exception:\n{cell}")


# --- one request, as the commands build it ----------------------------------------------------------

class Request:
    def __init__(self, kind: str, item: dict, engine, settings, sampling):
        from jupyter_codegemma.backends.base import token_counter
        from jupyter_codegemma.backends.chat import Turn
        from jupyter_codegemma.kernel import prompts as prompting
        from jupyter_codegemma.kernel.conversation import limits
        from jupyter_codegemma.kernel.conversation import prompts as cv
        from jupyter_codegemma.kernel.conversation.commands import _MARGIN, Conversation

        self.kind, self.id, self.engine, self.sampling = kind, item["id"], engine, sampling
        self.functions = kind == "generate"  # the runaway stop's setting for each command (magics.py)
        instruction = engine.instruction
        if kind == "generate":  # magics.py _generate_job
            self.max_new = settings.max_new_tokens
            context = item.get("context", [])[-settings.context_cells:] if settings.context_cells else []
            if instruction:
                self.prompt = [Turn("user", prompting.chat_request(item["request"], context))]
                self.shape = prompting.instruction_code_shape
            else:
                self.prompt = prompting.base_prompt(item["request"], context)
                self.shape = prompting.base_code_shape
        else:  # conversation/commands.py explain -> _run (a failure: failed=True)
            self.max_new = settings.explain_max_new_tokens
            failure, files = run_failing_cells(item.get("setup", []), item["cell"])
            self.error = f"{type(failure.error).__name__}: {failure.error}"
            candidates = limits.contexts_at_scales(lambda budget: cv.failure_context(failure, files, budget))
            count_text = token_counter(engine)
            if instruction:
                def build(ctx):
                    return [Turn("user", cv.explain_request(ctx, True))]

                def count(turns):
                    from jupyter_codegemma.backends.base import chat_tokens
                    return chat_tokens(count_text, turns, cv.SYSTEM)
            else:
                def build(ctx):
                    return cv.base_explain_prompt(ctx, True)

                def count(prompt):
                    return count_text(prompt) + 1
            limit = engine.context_len - self.max_new - _MARGIN
            self.prompt, _, _ = limits.fit_prompt(candidates, build, count, limit)

            def shape(text, final):
                return Conversation._shape(text, "explain", instruction)

            self.shape = shape
        self.instruction = instruction

    def start(self, stop):
        from jupyter_codegemma.kernel.conversation import prompts as cv

        if self.instruction:
            system = cv.SYSTEM if self.kind == "explain" else None
            return self.engine.chat(self.prompt, system=system, max_new_tokens=self.max_new, sampling=self.sampling,
                                    cancel=stop)
        return self.engine.generate(self.prompt, max_new_tokens=self.max_new, sampling=self.sampling, cancel=stop,
                                    truncate=True)


def run_raw(request: Request, early: bool) -> dict:
    """One raw generation (shaped, no stop_runaway), stopped early once a runaway is certain; the
    answer before and after the stop, their lengths and how they ended."""
    from jupyter_codegemma.backends.base import GenerationResult, shaped_stream
    from jupyter_codegemma.backends.repetition import RunawayScan, cut_runaway, stop_runaway

    seen: dict = {}
    scan = RunawayScan(request.functions)

    def raw_shape(text, final):
        shown, complete = request.shape(text, final)
        if early and not complete:
            if "at" not in seen and scan.feed(text)[1]:
                seen["at"] = (text.count("\n"), len(text))
            if "at" in seen:
                lines, chars = seen["at"]
                if text.count("\n") >= lines + EARLY_LINES or len(text) >= chars + EARLY_CHARS:
                    seen["early"] = True
                    return shown, True
        return shown, complete

    result = GenerationResult(prompt_ids=[], ids=[], text="")
    started = time.perf_counter()
    for _ in shaped_stream(request.start, raw_shape, result, None):
        pass
    seconds = time.perf_counter() - started
    tokenizer = request.engine.tokenizer
    stops = set(request.engine.stop_ids)
    ids = [i for i in result.ids if i not in stops]
    raw = tokenizer.decode(ids)
    before, shape_done = request.shape(raw, True)[0], request.shape(raw, False)[1]
    stopped = stop_runaway(request.shape, request.functions)
    after = stopped(raw, True)[0]
    # Where the stopped stream would have ended: the first prefix its shape calls complete (fed
    # token by token to one stopped shape, as the stream feeds it: its runaway scan is incremental).
    streamed = stop_runaway(request.shape, request.functions)
    after_tokens, after_ended = len(result.ids), None
    for k in range(1, len(ids) + 1):
        text = tokenizer.decode(ids[:k])
        if streamed(text, False)[1]:
            after_tokens = k
            after_ended = "repeat" if cut_runaway(text, request.functions)[1] else "closed"
            break
    if seen.get("early"):
        ended = "runaway (stopped early)"
    elif result.ids and result.ids[-1] in stops:
        ended = "eos"
    elif shape_done:
        ended = "closed"
    else:
        ended = result.stats.finish_reason or "length"
    return {
        "kind": request.kind, "id": request.id, "raw": raw, "before": before, "after": after,
        "tokens": len(result.ids), "ended": ended, "after_tokens": after_tokens,
        "after_ended": after_ended or ended, "seconds": round(seconds, 2),
        "draft_accepted": result.stats.draft_accepted,
        "block_before": repeated_block(before), "block_after": repeated_block(after),
        "runaway_before": cut_runaway(before, request.functions)[1],
        "runaway_after": cut_runaway(after, request.functions)[1],
        "parses_before": parses(before), "parses_after": parses(after),
    }


def run_stopped(request: Request) -> tuple[str, int]:
    """The command's own path: the shape wrapped in stop_runaway, generation stopped at the repeat."""
    from jupyter_codegemma.backends.base import GenerationResult, shaped_stream
    from jupyter_codegemma.backends.repetition import stop_runaway

    result = GenerationResult(prompt_ids=[], ids=[], text="")
    for _ in shaped_stream(request.start, stop_runaway(request.shape, request.functions), result, None):
        pass
    return result.text, len(result.ids)


# --- the report -------------------------------------------------------------------------------------

def share(rows: list[dict], key: str) -> str:
    n = sum(row[key] for row in rows)
    return f"{n:2d}/{len(rows)} = {100 * n / max(len(rows), 1):5.1f} %"


def flags(row: dict) -> str:
    """B/b: a repeated block before/after the stop, R/r: a runaway."""
    return "".join(mark if row[key] else "-" for mark, key in (("B", "block_before"), ("R", "runaway_before"),
                                                                ("b", "block_after"), ("r", "runaway_after")))


def report(rows: list[dict]) -> None:
    print("\nper request (tokens raw -> after the stop; B/b: repeated block before/after, R/r: runaway)")
    for row in rows:
        first = next((line.strip() for line in row["after"].splitlines() if line.strip()), "(empty)")
        print(f"  {row['kind']:8} {row['id']:22} {flags(row)} {row['tokens']:4d} tok {row['ended']:24} -> "
              f"{row['after_tokens']:4d} tok {row['after_ended']:8} {row['seconds']:6.1f} s  {first[:48]!r}")
    print("\nshare of answers             before (raw)          after (stop_runaway)")
    for kind in ("generate", "explain", "all"):
        part = [r for r in rows if kind in ("all", r["kind"])]
        if not part:
            continue
        print(f"  {kind:8} repeated block >= 2 lines  {share(part, 'block_before')}   {share(part, 'block_after')}")
        print(f"  {kind:8} any runaway                {share(part, 'runaway_before')}   "
              f"{share(part, 'runaway_after')}")
        if kind == "generate":
            print(f"  {kind:8} code that parses           {share(part, 'parses_before')}   "
                  f"{share(part, 'parses_after')}")
    tokens = sum(r["tokens"] for r in rows)
    seconds = sum(r["seconds"] for r in rows)
    print(f"\n{tokens} tokens generated in {seconds:.0f} s ({tokens / max(seconds, 1e-9):.1f} tokens/s, "
          f"{sum(r['draft_accepted'] for r in rows)} from accepted drafts); after the stop the answers hold "
          f"{sum(r['after_tokens'] for r in rows)} tokens")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetition-penalty", nargs="+", default=["default"], metavar="P",
                        help="one pass per value, for every request (1.0 is off; 'default': "
                             "CodeGemma.repetition_penalty's for each kind); a pass reuses the answers of an "
                             "earlier one where a kind's sampling is the same")
    parser.add_argument("--repetition-window", type=int, default=None, help="default: SamplingParams' (64)")
    parser.add_argument("--only", choices=("generate", "explain"), default=None)
    parser.add_argument("--limit", type=int, default=0, help="only the first N of each kind (0: all)")
    parser.add_argument("--check", type=int, default=2,
                        help="run the real stopped path for N requests that repeated, and compare")
    parser.add_argument("--full", action="store_true", help="no early stop: raw answers run to the end")
    parser.add_argument("--model", default=None, help="a GGUF file (default: Gemma 3 270M)")
    parser.add_argument("--json", default=None, help="write every answer (raw, before, after) here")
    args = parser.parse_args()
    try:
        penalties = [None if p == "default" else float(p) for p in args.repetition_penalty]
    except ValueError:
        parser.error(f"--repetition-penalty takes numbers or 'default', not {args.repetition_penalty}")

    from jupyter_codegemma.backends.local import Engine
    from jupyter_codegemma.backends.local.options import EngineOptions

    data = json.loads(SET.read_text())
    started = time.perf_counter()
    # No background warm-up: it compiles programs for long prompts, which this set never needs.
    engine = Engine.load(args.model, EngineOptions(warm_up=False))
    info = engine.info()
    import jax

    print(f"CPU: {cpu_name()} ({__import__('os').cpu_count()} cores); JAX {jax.__version__} on {info['device']}")
    print(f"model: {info['model']} ({info['source']}), dtype {info['dtype']} (prefill {info['prefill_dtype']}), "
          f"kernels {info['kernels']}; loaded in {time.perf_counter() - started:.0f} s")
    done: dict = {}  # (kind, id, sampling) -> row: a later pass with the same sampling reuses it
    passes = []
    for penalty in penalties:
        settings, samplings = pass_settings(args, penalty)
        print(f"\n=== sampling: temperature {settings.temperature}, repetition penalty {describe(samplings)}"
              + f"; max_new_tokens {settings.max_new_tokens} (generate), {settings.explain_max_new_tokens} (explain)"
              + ("; raw answers run to the end" if args.full else
                 f"; raw answers stop {EARLY_LINES} lines or {EARLY_CHARS} characters after their first repeat"))
        rows, requests = [], {}
        for kind in ("generate", "explain"):
            if args.only not in (None, kind):
                continue
            items = data[kind][:args.limit] if args.limit else data[kind]
            for item in items:
                request = Request(kind, item, engine, settings, samplings[kind])
                key = (kind, item["id"], repr(samplings[kind]))
                reused = key in done
                if not reused:
                    done[key] = run_raw(request, early=not args.full)
                    requests[request.id] = request
                row = done[key]
                rows.append(row)
                print(f"{kind:8} {row['id']:22} {flags(row)} {row['tokens']:4d} tokens, {row['ended']} "
                      + ("(the answer of an earlier pass)" if reused else f"({row['seconds']:.1f} s)"), flush=True)
                if args.json:  # as it goes: a run cut short keeps what it did
                    save(args.json, info, passes + [{"sampling": samplings, "rows": rows}])
        report(rows)
        passes.append({"sampling": samplings, "rows": rows})
        if args.check:
            print("\nthe real stopped path (stop_runaway in the stream) against the after-the-fact stop:")
            repeated = [r for r in rows if r["runaway_before"] and r["id"] in requests]  # not those reused
            for row in sorted(repeated, key=lambda r: r["after_tokens"])[:args.check]:
                text, tokens = run_stopped(requests[row["id"]])
                same = "the same text" if text == row["after"] else "DIFFERENT text"
                print(f"  {row['id']:22} {same}; {tokens} tokens generated (simulated stop at {row['after_tokens']})")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json:
        save(args.json, info, passes)


def save(path: str, info: dict, passes: list[dict]) -> None:
    Path(path).write_text(json.dumps({"info": info, "passes": [
        {"sampling": {k: v.__dict__ for k, v in p["sampling"].items()}, "rows": p["rows"]} for p in passes]}, indent=1))


def pass_settings(args, penalty: float | None):
    """(settings, sampling of each kind) for one pass: as the commands build them (magics.py for
    %%codegemma, conversation/commands.py for explain), with `penalty` for every kind unless None."""
    from jupyter_codegemma.backends.base import SamplingParams
    from jupyter_codegemma.kernel.settings import CodeGemma

    settings = CodeGemma(model=args.model or "")  # the penalty's default depends on the model
    window = {} if args.repetition_window is None else {"repetition_window": args.repetition_window}
    if penalty is not None:
        settings.repetition_penalty = penalty
    samplings = {kind: SamplingParams(temperature=settings.temperature, seed=settings.seed,
                                      repetition_penalty=settings.penalty_for(kind), **window)
                 for kind in ("generate", "explain")}
    return settings, samplings


def describe(samplings: dict) -> str:
    return ", ".join(f"{sampling.repetition_penalty} over the last {sampling.repetition_window} ids ({kind})"
                     if sampling.penalised else f"off ({kind})" for kind, sampling in samplings.items())


if __name__ == "__main__":
    main()
