"""Run many candidate programs against one exercise's tests in a single sandbox process (for the repair search).

Starting Python costs ~30 ms; a candidate fix and a beginner's tests run in about a millisecond. So one
child process (with the limits of `sandbox.run_tests`: address space, no core files) starts once, and
*forks* a fresh grandchild per candidate: each candidate gets a clean copy of the interpreter (one
candidate cannot monkeypatch `len` for the next), its own CPU-seconds limit (CPU time starts at zero in a
forked process) and its own wall-clock limit, enforced by the child, which kills the grandchild when it
expires. The verdicts come back one line per candidate, tagged with a random nonce, as soon as each is
known: if the child itself dies or the whole batch runs out of time, the candidates without a verdict
count as timed out — never as passed.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from typing import Sequence

from .sandbox import Limits, SandboxResult, _kill_group

__all__ = ["run_many"]

# Per-candidate limits: a fix of a beginner's exercise runs its tests in milliseconds, and one candidate
# that loops (the student's loop, made endless by a candidate edit) must not eat the search's time.
CANDIDATE_LIMITS = Limits(cpu_s=2, wall_s=2.0, memory_mb=512)

_CHILD = r'''
import io, json, os, resource, select, signal, sys, time, traceback
job = json.loads(sys.stdin.read())
limit = job["memory_mb"] * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
verdicts = os.fdopen(os.dup(1), "w")
timeouts = 0
def candidate(code, tests, out):
    resource.setrlimit(resource.RLIMIT_CPU, (job["cpu_s"], job["cpu_s"] + 1))
    captured = io.StringIO()
    sys.stdout = sys.stderr = captured
    def report(status, message):
        os.write(out, json.dumps({"status": status, "message": message}).encode())
        os._exit(0)
    def where(tb, filename):
        lines = [f.lineno for f in traceback.extract_tb(tb) if f.filename == filename]
        return f" (line {lines[-1]})" if lines else ""
    namespace = {"__name__": "__main__"}
    for filename, source in (("<student code>", code), ("<tests>", tests)):
        try:
            exec(compile(source, filename, "exec"), namespace)
            if filename == "<tests>" and callable(namespace.get("check")):
                namespace["check"](namespace)
        except MemoryError:
            report("memory", "")
        except AssertionError as e:
            report("failed", (str(e) or "a test failed") + where(sys.exc_info()[2], "<tests>"))
        except SystemExit as e:
            report("error", f"the code called exit({e.code!r}) in {filename}")
        except BaseException as e:
            report("error", f"{type(e).__name__}: {e}" + where(sys.exc_info()[2], filename) + f" in {filename}")
    report("passed", "")
for i, code in enumerate(job["codes"]):
    if timeouts >= job["max_timeouts"]:
        break
    r, w = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            candidate(code, job["tests"], w)
        finally:
            os._exit(1)
    os.close(w)
    data, verdict = b"", None
    while True:
        left = job["wall_s"] - (time.monotonic() - started)
        ready = select.select([r], [], [], max(left, 0))[0] if left > 0 else []
        if not ready:
            os.kill(pid, signal.SIGKILL)
            verdict = {"status": "timeout", "message": f"stopped after {job['wall_s']:g} s"}
            break
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if verdict is None:
        try:
            verdict = json.loads(data)
        except ValueError:
            signum = -status if status < 0 else (status & 0x7F)
            verdict = {"status": "timeout" if signum in (signal.SIGXCPU, signal.SIGKILL) else "crashed",
                       "message": f"the candidate's process ended without a verdict (status {status})"}
    timeouts += verdict["status"] == "timeout"
    verdict["i"] = i
    verdict["seconds"] = time.monotonic() - started
    verdicts.write(job["nonce"] + json.dumps(verdict) + "\n")
    verdicts.flush()
'''


def run_many(codes: Sequence[str], tests: str = "", limits: Limits = CANDIDATE_LIMITS,
             deadline_s: float | None = None, max_timeouts: int | None = None) -> list[SandboxResult]:
    """Each of `codes`, then `tests`, in its own forked sandboxed process; one verdict per code, in order.

    `limits` apply to each candidate; `deadline_s` (default: the sum of the candidates' wall limits plus
    start-up) bounds the whole batch, and after `max_timeouts` candidates that time out the rest are not
    run (when the tests never finish, no candidate will): what has no verdict counts as timed out."""
    if not codes:
        return []
    nonce = "@@verdict-" + secrets.token_hex(8) + "@@"
    job = json.dumps({"codes": list(codes), "tests": tests, "nonce": nonce, "cpu_s": int(limits.cpu_s),
                      "wall_s": float(limits.wall_s), "memory_mb": int(limits.memory_mb),
                      "max_timeouts": len(codes) if max_timeouts is None else max_timeouts})
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "SYSTEMROOT")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    deadline = deadline_s if deadline_s is not None else len(codes) * (limits.wall_s + 0.2) + 5.0
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _CHILD], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
                            cwd=os.getcwd())
    try:
        out, _ = proc.communicate(job.encode(), timeout=deadline)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, _ = proc.communicate()
    _kill_group(proc)  # anything a candidate started in the batch's session
    verdicts: dict[int, SandboxResult] = {}
    for line in out.decode("utf-8", "replace").splitlines():
        if line.startswith(nonce):
            v = json.loads(line[len(nonce):])
            verdicts[v["i"]] = SandboxResult(v["status"], v["message"], "", v["seconds"])
    late = SandboxResult("timeout", f"not run, or no verdict within the batch's {deadline:g} s",
                         seconds=time.monotonic() - started)
    return [verdicts.get(i, late) for i in range(len(codes))]
