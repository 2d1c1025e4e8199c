"""Which compiled step the warm-up prepares next, so that it helps the request in front of it.

A kernel's warm-up compiles (or reads from XLA's cache) a dozen programs, ~0.5–1 s each on two cores.
Run blindly beside a request, it takes the cores the request needs: a first short completion waited
for programs of long prompts it never used. So while a request runs, the warm-up compiles only what
that request announced it will need next — the later chunks of a long prompt and the decode step
over the longer view of the cache — and the rest of its list once no request runs.

A program is (step, positions, kv_len), as `Sampler.warm_up_programs` names them.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable

from ..base import CancelToken

Program = tuple[str, int, int]


class CompileQueue:
    """`busy()` tells whether a request runs (the sampler's lock is held)."""

    def __init__(self, busy: Callable[[], bool]):
        self._busy = busy
        self._condition = threading.Condition()
        self._claimed: set[Program] = set()  # compiled, or being compiled
        self._wanted: list[Program] = []  # announced by requests, the latest first

    def claim(self, program: Program) -> bool:
        """Mark `program` as compiled (by whoever asks); False if it was claimed before."""
        with self._condition:
            if program in self._claimed:
                return False
            self._claimed.add(program)
            return True

    def claimed(self, program: Program) -> bool:
        with self._condition:
            return program in self._claimed

    def want(self, programs: Iterable[Program]) -> None:
        """A running request will call `programs` soon: the warm-up compiles them first (those a request
        wanted and did not reach stay first in line: they are the likeliest to be needed again)."""
        with self._condition:
            fresh = [p for p in programs if p not in self._claimed and p not in self._wanted]
            if fresh:
                self._wanted[:0] = fresh
                self._condition.notify_all()

    def next(self, pending: list[Program], stop: CancelToken | None = None,
             yield_to_requests: bool = False) -> Program | None:
        """The next program to compile, claimed: a running request's first, then `pending`'s (taken
        from its front; with `yield_to_requests`, only once no request runs). None when both are
        done or `stop` is set."""
        with self._condition:
            while not (stop is not None and stop.is_set()):
                while self._wanted:
                    program = self._wanted.pop(0)
                    if program not in self._claimed:
                        self._claimed.add(program)
                        return program
                if not (yield_to_requests and self._busy()):
                    while pending:
                        program = pending.pop(0)
                        if program not in self._claimed:
                            self._claimed.add(program)
                            return program
                    return None
                if not any(p not in self._claimed for p in pending):
                    return None
                self._condition.wait(0.05)  # a request runs: wait for what it wants, or its end
            return None
