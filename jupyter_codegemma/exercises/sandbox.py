"""Run a student's code and the exercise's tests in a separate Python process, never in the kernel.

The child sets its own limits with `resource.setrlimit` before it runs anything: CPU seconds
(RLIMIT_CPU, the kernel sends SIGXCPU), address space (RLIMIT_AS, allocations fail with MemoryError)
and no core files. The parent adds a wall-clock timeout (a sleeping or blocked child uses no CPU) and
kills the child's whole process group when it expires. The verdict travels back on stdout as one line
tagged with a random nonce, so nothing the student prints can forge it.

This is a guard against mistakes (an endless loop, a huge list, `os._exit`), not a security boundary:
the child runs as the same user with the same files.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

__all__ = ["Limits", "SandboxResult", "run_tests"]


@dataclass(frozen=True)
class Limits:
    cpu_s: int = 5  # CPU time of the child
    wall_s: float = 10.0  # wall-clock time, including Python's start-up (~30 ms)
    memory_mb: int = 512  # address space of the child
    output_chars: int = 10_000  # what is kept of the student's printed output


@dataclass(frozen=True)
class SandboxResult:
    status: str  # "passed" | "failed" (a test failed) | "error" (the code raised) | "timeout" | "memory" | "crashed"
    message: str  # for the student: what happened, and what to do
    output: str = ""  # what the code printed (truncated)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "passed"


# The child: limits first, then the student's code, then the tests, all in one fresh namespace.
_CHILD = r'''
import io, json, os, resource, sys, traceback
job = json.loads(sys.stdin.read())
resource.setrlimit(resource.RLIMIT_CPU, (job["cpu_s"], job["cpu_s"] + 1))
limit = job["memory_mb"] * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
verdict_out = os.fdopen(os.dup(1), "w")
captured = io.StringIO()
sys.stdout = sys.stderr = captured
def report(status, message):
    text = captured.getvalue()
    verdict_out.write(job["nonce"] + json.dumps({"status": status, "message": message,
                                                 "output": text[-job["output_chars"]:]}) + "\n")
    verdict_out.flush()
    os._exit(0)
def where(tb, filename):
    lines = [f.lineno for f in traceback.extract_tb(tb) if f.filename == filename]
    return f" (line {lines[-1]})" if lines else ""
namespace = {"__name__": "__main__"}
for filename, source in (("<student code>", job["code"]), ("<tests>", job["tests"])):
    try:
        exec(compile(source, filename, "exec"), namespace)
        if filename == "<tests>" and callable(namespace.get("check")):
            namespace["check"](namespace)
    except MemoryError:
        report("memory", "")
    except AssertionError as e:
        tb = sys.exc_info()[2]
        report("failed", (str(e) or "a test failed") + where(tb, "<tests>"))
    except SystemExit as e:
        report("error", f"the code called exit({e.code!r}) in {filename}")
    except BaseException as e:
        tb = sys.exc_info()[2]
        report("error", f"{type(e).__name__}: {e}" + where(tb, filename) + f" in {filename}")
report("passed", "")
'''


def run_tests(code: str, tests: str = "", limits: Limits | None = None, cwd: str | None = None) -> SandboxResult:
    """Run `code`, then `tests`, in a limited child process; a verdict the student can act on. `cwd`: the
    child's working directory (default: this process's; `codegemma grade` gives an empty scratch folder)."""
    limits = limits or Limits()
    nonce = "@@verdict-" + secrets.token_hex(8) + "@@"
    job = json.dumps({"code": code, "tests": tests, "nonce": nonce, "cpu_s": int(limits.cpu_s),
                      "memory_mb": int(limits.memory_mb), "output_chars": limits.output_chars})
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "SYSTEMROOT")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _CHILD], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
                            cwd=cwd or os.getcwd())
    try:
        out, err = proc.communicate(job.encode(), timeout=limits.wall_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        return SandboxResult("timeout", f"stopped after {limits.wall_s:g} s (wall clock): the code or the tests "
                             "did not finish. Look for a loop that never ends (while True, a condition that "
                             "stays true) or code that waits for input.", seconds=time.monotonic() - started)
    seconds = time.monotonic() - started
    text = out.decode("utf-8", "replace")
    for line in text.splitlines():
        if line.startswith(nonce):
            verdict = json.loads(line[len(nonce):])
            return _verdict(verdict, limits, seconds)
    _kill_group(proc)  # anything the child started in its session
    code_ = proc.returncode
    tail = err.decode("utf-8", "replace").strip()[-500:]
    if code_ == -signal.SIGXCPU or code_ == -signal.SIGKILL and seconds >= limits.cpu_s:
        return SandboxResult("timeout", f"stopped after {limits.cpu_s} s of CPU time: the code or the tests "
                             "did not finish. Look for a loop that never ends.", seconds=seconds)
    if code_ is not None and code_ < 0:
        name = signal.Signals(-code_).name if -code_ in signal.Signals._value2member_map_ else str(-code_)
        return SandboxResult("crashed", f"the Python process running the code crashed (signal {name})"
                             + (f": {tail}" if tail else ""), seconds=seconds)
    return SandboxResult("crashed", f"the Python process running the code exited with code {code_} before the "
                         "tests finished (os._exit or sys.exit in the code, or a crash)" + (f": {tail}" if tail else ""),
                         seconds=seconds)


def _verdict(v: dict, limits: Limits, seconds: float) -> SandboxResult:
    status, message, output = v["status"], v["message"], v["output"]
    if status == "memory":
        message = (f"stopped: the code tried to use more than {limits.memory_mb} MB of memory. Look for a list, "
                   "string or loop that grows without end.")
    elif status == "passed":
        message = "all tests passed"
    return SandboxResult(status, message, output, seconds)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
