"""`codegemma eval`: the shipped HumanEval infilling data, scoring in the sandbox, the report, one real run."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from jupyter_codegemma.evaluation import BENCHMARKS, EvalOptions, evaluate, format_table, load_tasks, select_tasks
from jupyter_codegemma.evaluation.data import DATA_DIR, benchmark_of
from jupyter_codegemma.evaluation.report import percentile, summarize
from jupyter_codegemma.evaluation.runner import TaskResult, resolve_layout
from jupyter_codegemma.evaluation.scoring import normalize, score
from jupyter_codegemma.exercises.sandbox import Limits


def codegemma(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jupyter_codegemma.cli", *args], capture_output=True, text=True,
                          timeout=600)


def test_the_package_ships_all_three_files_and_the_licence():
    assert "MIT License" in (DATA_DIR / "LICENSE").read_text() and "OpenAI" in (DATA_DIR / "LICENSE").read_text()
    counts = {name: len(load_tasks(name)) for name in BENCHMARKS}
    assert counts == {"single-line": 1033, "multi-line": 5815, "random-span-light": 164}
    for name, filename in BENCHMARKS.items():  # read as stored: one JSON object a line
        with gzip.open(DATA_DIR / filename, "rt") as f:
            first = json.loads(f.readline())
        assert {"task_id", "prompt", "suffix", "canonical_solution", "test", "entry_point"} <= first.keys()
        assert benchmark_of(first["task_id"]) == name


# A spread of tasks: the first and later problems of each benchmark, long and short gaps.
SPREAD = [t for name in BENCHMARKS for t in load_tasks(name, stride=97 if name != "multi-line" else 601)]


@pytest.mark.parametrize("task", SPREAD, ids=lambda t: t.task_id)
def test_the_canonical_solution_passes_and_matches_exactly(task):
    verdict = score(task, task.canonical_solution)
    assert verdict.passed, verdict.message
    assert verdict.exact


def test_a_wrong_completion_fails_and_broken_code_is_an_error():
    task = load_tasks("single-line", task_ids=("SingleLineInfilling/HumanEval/0/L4",))[0]
    assert task.canonical_solution.strip() == "if distance < threshold:"
    wrong = score(task, task.canonical_solution.replace("<", ">"))
    assert wrong.status == "failed" and not wrong.exact and "a test failed" in wrong.message
    broken = score(task, "                if distance < threshold\n")
    assert broken.status == "error" and "SyntaxError" in broken.message


def test_a_completion_that_never_ends_is_stopped_by_the_timeouts():
    task = load_tasks("single-line", limit=1)[0]  # the gap is the outer loop's header
    assert task.canonical_solution == "    for idx, elem in enumerate(numbers):\n"
    spin = score(task, "    for idx, elem in iter(lambda: (-1, 0.0), None):\n", Limits(cpu_s=1, wall_s=20.0))
    assert spin.status == "timeout" and not spin.passed
    sleep = score(task, "    for idx, elem in enumerate(__import__('time').sleep(60) or numbers):\n",
                  Limits(cpu_s=5, wall_s=1.5))
    assert sleep.status == "timeout" and "1.5 s" in sleep.message


def test_exact_match_ignores_trailing_space_and_the_final_newline_but_not_indentation():
    assert normalize("    return x  \n") == normalize("    return x")
    assert normalize("  return x\n") != normalize("    return x\n")


def test_selecting_tasks():
    assert [t.task_id for t in load_tasks("single-line", limit=2)] == [
        "SingleLineInfilling/HumanEval/0/L0", "SingleLineInfilling/HumanEval/0/L1"]
    spread = load_tasks("multi-line", stride=1000)
    assert len(spread) == 6 and spread[1].task_id != spread[0].task_id
    picked = select_tasks((), ("RandomSpanInfillingLight/HumanEval/3/1",))
    assert list(picked) == ["random-span-light"] and len(picked["random-span-light"]) == 1
    assert list(select_tasks()) == ["single-line"]
    with pytest.raises(ValueError, match="not a HumanEval infilling task id"):
        select_tasks((), ("HumanEval/0",))
    with pytest.raises(ValueError, match="not in the chosen benchmarks"):
        select_tasks(("multi-line",), ("SingleLineInfilling/HumanEval/0/L0",))
    with pytest.raises(ValueError, match="no task"):
        load_tasks("single-line", task_ids=("SingleLineInfilling/HumanEval/0/L99",))


def _result(status: str, latency: float, exact: bool = False) -> TaskResult:
    return TaskResult(task_id="t", benchmark="single-line", completion="", status=status, exact=exact,
                      latency_ms=latency, ttft_ms=0.0, prompt_tokens=1, reused_tokens=0, new_tokens=1,
                      prompt_mode="prefix-only")


def test_summary_and_table():
    results = [_result("passed", 100.0, exact=True), _result("failed", 200.0), _result("timeout", 300.0),
               _result("passed", 400.0)]
    s = summarize("single-line", results, model="m", seconds=1.0)
    assert (s.tasks, s.passed, s.exact) == (4, 2, 1)
    assert s.pass_at_1 == 0.5 and s.exact_match == 0.25
    assert s.mean_latency_ms == 250.0 and s.p95_latency_ms == 400.0
    assert s.statuses == {"passed": 2, "failed": 1, "timeout": 1} and s.prompt_mode == "prefix-only"
    table = format_table([s])
    assert "50.0%" in table and "25.0%" in table and "78.4%" in table and "prefix-only" in table
    assert percentile(list(range(1, 101)), 95) == 95 and percentile([], 95) == 0.0


@pytest.mark.parametrize("args, message", [
    (("eval", "--task-id", "HumanEval/0"), "not a HumanEval infilling task id"),
    (("eval", "--limit", "0"), "limit must be at least 1"),
    (("eval", "--timeout", "0"), "--timeout must be positive"),
])
def test_bad_eval_options_fail_before_the_model_loads(args, message):
    done = codegemma(*args)
    assert done.returncode == 2 and message in done.stderr and "loading" not in done.stderr


@pytest.mark.slow
def test_a_real_run_on_the_default_model(engine):
    with pytest.raises(ValueError, match="no FIM tokens"):
        resolve_layout(engine, "psm")
    tasks = load_tasks("single-line", task_ids=("SingleLineInfilling/HumanEval/0/L0",
                                                "SingleLineInfilling/HumanEval/0/L4"))
    engine.reset_cache()  # both runs start alike (whether cached and fresh prefill agree is the engine's tests' concern)
    summary, results = evaluate(engine, "single-line", tasks, EvalOptions(max_new_tokens=24))
    assert summary.tasks == 2 and summary.prompt_mode == "prefix-only"
    assert [r.task_id for r in results] == [t.task_id for t in tasks]
    for r in results:
        assert r.status in ("passed", "failed", "error", "timeout") and r.latency_ms > 0 and r.new_tokens >= 1
        assert r.completion == "" or r.completion.endswith("\n")  # a whole line goes in
    # Greedy decoding is deterministic: the same tasks give the same completions.
    engine.reset_cache()
    _, again = evaluate(engine, "single-line", tasks, EvalOptions(max_new_tokens=24))
    assert [r.completion for r in again] == [r.completion for r in results]


@pytest.mark.slow
def test_the_command_prints_the_table_and_json():
    done = codegemma("eval", "--limit", "2", "--max-new-tokens", "16")
    assert done.returncode == 0, done.stderr
    assert "pass@1" in done.stdout and "prefix-only" in done.stdout and "no FIM tokens" in done.stdout
    done = codegemma("eval", "--task", "random-span-light", "--limit", "1", "--max-new-tokens", "8", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["fim"] is False and out["summaries"][0]["benchmark"] == "random-span-light"
    assert out["summaries"][0]["tasks"] == 1 and len(out["results"]) == 1
    assert {"pass_at_1", "exact_match", "mean_latency_ms", "p95_latency_ms", "prompt_mode"} <= out["summaries"][0].keys()
    done = codegemma("eval", "--limit", "1", "--mode", "psm")
    assert done.returncode == 2 and "no FIM tokens" in done.stderr
