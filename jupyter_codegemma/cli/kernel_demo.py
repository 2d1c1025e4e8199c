"""`make demo` / `codegemma kernel demo`: a real kernel, driven the way JupyterLab drives it.

Starts a kernel with `jupyter_client` (the extension loaded as the "CodeGemma (JAX)" kernelspec
loads it), opens the `jupyter_codegemma` comm on a subshell, asks for the kernel's status, sends
completion requests exactly as the labextension will, runs one `%%codegemma` cell, and prints
what came back with the timings a user waits for.
"""

from __future__ import annotations

import time
from typing import IO

from .. import protocol
from .kernel_client import KernelSession

PREFIX = 'def is_palindrome(text: str) -> bool:\n    """Return True if text reads the same backwards."""\n    return'
SUFFIX = "\n\n\nprint(is_palindrome('level'))\n"
EXTENDED = PREFIX + " text == text[::-1]\n\n\ndef is_anagram(a: str, b: str) -> bool:\n    return"
CELL = "%%codegemma --max-new-tokens 64\nsort a list of words by length, longest first"


def run_demo(out: IO[str]) -> int:
    say = lambda *a: print(*a, file=out, flush=True)  # noqa: E731
    started = time.perf_counter()
    with KernelSession(extensions=["jupyter_codegemma"]) as ks:
        say(f"kernel started with the extension in {time.perf_counter() - started:.2f} s")
        subshell = ks.create_subshell()
        comm_id = ks.open_comm(subshell_id=subshell)
        say(f"comm {protocol.TARGET!r} opened on subshell {subshell[:8]}")
        status = ks.status(comm_id, subshell_id=subshell)
        say(f"status: {status}")
        for label, prefix in (("first completion (loads + compiles)", PREFIX),
                              ("second completion (extends the first prefix)", EXTENDED),
                              ("third completion (same prefix again)", EXTENDED)):
            sent = time.perf_counter()
            replies = ks.complete(comm_id, prefix, SUFFIX, subshell_id=subshell, mode="line")
            wall = (time.perf_counter() - sent) * 1e3
            last = replies[-1]
            say(f"\n--- {label}: {len(replies) - 1} partial message(s), then {last['type']}")
            say(prefix[-60:].replace("\n", "\\n") + " ⟨" + last.get("text", last.get("message", "")) + "⟩")
            if last["type"] == "done":
                s = last["stats"]
                say(f"    {s['prompt_tokens']} prompt tokens ({s['reused_tokens']} reused), {s['new_tokens']} new; "
                    f"first token {s['ttft_ms']:.0f} ms, total {s['total_ms']:.0f} ms; round trip {wall:.0f} ms")
        say(f"\n--- a %%codegemma cell:\n{CELL}")
        sent = time.perf_counter()
        reply, outputs = ks.execute(CELL, timeout=300)
        payload = [p for p in reply.get("payload", []) if p.get("source") == "set_next_input"]
        updates = sum(m["msg_type"] == "update_display_data" for m in outputs)
        say(f"{reply['status']} in {time.perf_counter() - sent:.2f} s; {updates} streamed updates of the output")
        for m in outputs:
            if m["msg_type"] == "stream":
                say(m["content"]["text"].rstrip())
        say("--- the new cell below it (set_next_input):" if payload else "--- no cell inserted")
        if payload:
            say(payload[0]["text"])
        final = ks.status(comm_id, subshell_id=subshell)
        say(f"\nstatus: model {final['model']}, state {final['state']}, device {final['device']}, "
            f"FIM {final['fim']}; demo took {time.perf_counter() - started:.1f} s")
    return 0
