"""The warm-up's order (compile_queue.py): what a running request announced first, the rest of the
warm-up's list only once no request runs, and nothing twice."""

from __future__ import annotations

import threading
import time

from jupyter_codegemma.backends.local.compile_queue import CompileQueue

A, B, C, D = ("prefill", 16, 1024), ("prefill", 512, 2048), ("decode", 1, 2048), ("verify", 8, 2048)


def test_without_requests_the_list_is_taken_in_order_and_nothing_twice():
    queue = CompileQueue(busy=lambda: False)
    assert queue.claim(B)  # a request compiled it itself
    assert not queue.claim(B)
    pending = [A, B, C]
    assert [queue.next(pending), queue.next(pending), queue.next(pending)] == [A, C, None]
    assert pending == []


def test_what_a_request_wants_comes_first_the_latest_request_first():
    queue = CompileQueue(busy=lambda: False)
    queue.want([C])
    queue.want([B, A])
    pending = [A, D]
    assert [queue.next(pending) for _ in range(4)] == [B, A, C, D]


def test_while_a_request_runs_the_warm_up_compiles_only_what_it_wants():
    busy = threading.Event()
    busy.set()
    queue = CompileQueue(busy=busy.is_set)
    pending, taken = [A, B], []

    def warm_up():
        while (program := queue.next(pending, yield_to_requests=True)) is not None:
            taken.append(program)

    thread = threading.Thread(target=warm_up)
    thread.start()
    time.sleep(0.2)
    assert taken == [] and thread.is_alive()  # the request runs: the warm-up's own list waits
    queue.want([C, B])
    for _ in range(100):
        if len(taken) == 2:
            break
        time.sleep(0.02)
    assert taken == [C, B] and thread.is_alive()  # B came off the list: not compiled twice
    busy.clear()  # the request is over
    thread.join(5)
    assert not thread.is_alive() and taken == [C, B, A]


def test_a_stop_ends_the_wait():
    stop = threading.Event()
    queue = CompileQueue(busy=lambda: True)
    result = []
    thread = threading.Thread(target=lambda: result.append(queue.next([A], stop, yield_to_requests=True)))
    thread.start()
    stop.set()
    thread.join(5)
    assert result == [None]
