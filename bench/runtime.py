"""Runtime benchmark: load, compile, time to first token, prefill and decode speed, memory.

    python bench/runtime.py [--model PATH] [--runs 3] [--dtype auto] [--speculative on|off]

Each run is a fresh process (a new kernel starts the same way), so the figures include what
a user waits for. The first process gets empty caches (cold: GGUF conversion and XLA
compilation); the others reuse them (warm). Figures are medians over the warm runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

PROMPT_SEED = 1234


def _prompt_ids(engine, n: int) -> list[int]:
    """A real-looking prompt of exactly n tokens: Python source from the standard library."""
    import inspect
    import textwrap

    text = "".join(textwrap.dedent(inspect.getsource(m)) for m in (json.decoder, json.encoder, argparse))
    ids = engine.tokenize(text)
    if len(ids) < n:
        raise SystemExit(f"benchmark text too short: {len(ids)} < {n} tokens")
    return ids[:n]


def child(args) -> dict:
    """One process: load, warm up, measure. Prints a JSON object."""
    started = time.perf_counter()
    from jupyter_codegemma.backends.local import Engine, EngineOptions

    import_s = time.perf_counter() - started
    options = EngineOptions(dtype=args.dtype, cache_len=4096, cache_dir=args.cache_dir,
                            speculative=args.speculative == "on")
    t = time.perf_counter()
    engine = Engine.load(args.model, options)
    load_s = time.perf_counter() - t

    # Compile (or fetch from the persistent cache) the programs a short completion uses.
    t = time.perf_counter()
    engine.complete_text([engine.tokenizer.bos_id, 1106], max_new_tokens=2, stop_ids=())
    first_call_s = time.perf_counter() - t
    t = time.perf_counter()
    engine.reset_cache()
    engine.complete_text([engine.tokenizer.bos_id, 1106], max_new_tokens=2, stop_ids=())
    steady_call_s = time.perf_counter() - t
    out = {"import_s": import_s, "load_s": load_s, "compile_s": max(first_call_s - steady_call_s, 0.0)}
    info = engine.info()
    out["engine"] = " ".join(f"{key} {info.get(key)}" for key in ("dtype", "prefill_dtype", "isa", "kernels"))

    def ttft(n: int) -> float:
        ids = _prompt_ids(engine, n)
        engine.reset_cache()
        engine.complete_text(ids, max_new_tokens=1, stop_ids=())  # compile this shape first
        times = []
        for _ in range(args.repeats):
            engine.reset_cache()
            t0 = time.perf_counter()
            engine.complete_text(ids, max_new_tokens=1, stop_ids=())
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    out["ttft_512_ms"] = ttft(512) * 1e3
    ttft_2000 = ttft(2000)
    out["ttft_2000_ms"] = ttft_2000 * 1e3
    out["prefill_tok_s"] = 2000 / ttft_2000

    ids = _prompt_ids(engine, 64)
    rates = []
    for i in range(args.repeats + 1):
        engine.reset_cache()
        r = engine.complete_text(ids, max_new_tokens=128, stop_ids=())
        if i:  # the first run compiles the decode buckets
            rates.append((r.stats.new_tokens - 1) / ((r.total_ms - r.ttft_ms) / 1e3))
    out["decode_tok_s"] = statistics.median(rates)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(args, cache_dir: str) -> dict:
    cmd = [sys.executable, __file__, "--child", "--cache-dir", cache_dir, "--dtype", args.dtype,
           "--repeats", str(args.repeats), "--speculative", args.speculative]
    if args.model:
        cmd += ["--model", args.model]
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"benchmark process failed with status {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


ROWS = [
    ("import_s", "import jupyter_codegemma.backends.local", "s", 2),
    ("load_s", "load weights", "s", 2),
    ("compile_s", "compile (first short completion)", "s", 2),
    ("warm_start_s", "load + compile", "s", 2),
    ("ttft_512_ms", "time to first token, 512-token prompt", "ms", 0),
    ("ttft_2000_ms", "time to first token, 2000-token prompt", "ms", 0),
    ("prefill_tok_s", "prefill at 2000 tokens", "tok/s", 0),
    ("decode_tok_s", "decode, 128 tokens", "tok/s", 1),
    ("peak_rss_mb", "peak RSS", "MB", 0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a GGUF file (default: Gemma 3 270M)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "int8"))
    parser.add_argument("--speculative", default="on", choices=("on", "off"),
                        help="draft checks (prompt-lookup decoding); off: plain decoding")
    parser.add_argument("--runs", type=int, default=3, help="warm processes (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats inside a process (default 3)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    with tempfile.TemporaryDirectory(prefix="codegemma-bench-") as cache_dir:
        print(f"cold run (empty caches in {cache_dir}) ...", file=sys.stderr, flush=True)
        cold = run_child(args, cache_dir)
        warm_runs = []
        for i in range(args.runs):
            print(f"warm run {i + 1}/{args.runs} ...", file=sys.stderr, flush=True)
            warm_runs.append(run_child(args, cache_dir))
    for run in [cold, *warm_runs]:
        run["warm_start_s"] = run["load_s"] + run["compile_s"]
    warm = {key: statistics.median(run[key] for run in warm_runs) for key in warm_runs[0] if key != "engine"}

    print(f"\njupyter-codegemma runtime benchmark — model: {args.model or 'Gemma 3 270M (default)'}, "
          f"dtype {args.dtype}, drafts {args.speculative}, {os.cpu_count()} CPUs, {args.runs} warm runs (medians), "
          f"load average {os.getloadavg()[0]:.1f}\n{cold['engine']}\n")
    print(f"{'figure':<42} {'cold':>10} {'warm':>10}  unit")
    for key, label, unit, digits in ROWS:
        print(f"{label:<42} {cold[key]:>10.{digits}f} {warm[key]:>10.{digits}f}  {unit}")
    print(json.dumps({"cold": cold, "warm": warm}))


if __name__ == "__main__":
    main()
