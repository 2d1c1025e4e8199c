"""A class on one server: 8 kernels at once, each sending 20 completion requests to one real
llama-cpp-python server. Every request must end in exactly one `done` or `cancelled` (a newer request
from the same editor supersedes an older one, as when a student keeps typing); none may be lost or fail.
Latencies are printed (pytest -s) and written to remote_load.json in the test's temporary directory.
"""

from __future__ import annotations

import json
import statistics
import threading
import time

import pytest

from llama_server import LlamaServer
from protocol_golden import validate_reply
from test_remote_server import remote_kernel

pytestmark = pytest.mark.slow

KERNELS = 8
REQUESTS = 20
SUPERSEDED_EVERY = 5  # every 5th request is overtaken by the next one before it is answered
TIMEOUT_S = 600  # one request may wait behind the other 7 kernels' on a slow, shared 2-core machine


def _percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _prefix(kernel: int, i: int) -> str:
    return (f"# helpers of student {kernel}\nimport math\n\n"
            f"def scaled_{i}(values, factor={i + 2}):\n    return [v * factor for v in values]\n\n"
            f"def total_{i}(values):\n    return")


def _student(ks, comm_id: str, kernel: int, record: dict) -> None:
    for i in range(REQUESTS):
        request_id = f"k{kernel}-r{i}"
        data = {"v": 1, "type": "complete", "id": request_id, "prefix": _prefix(kernel, i), "suffix": "\n",
                "language": "python", "mode": "line", "max_new_tokens": 16}
        record[request_id] = {"sent": time.monotonic(), "superseded": i % SUPERSEDED_EVERY == SUPERSEDED_EVERY - 1
                              and i < REQUESTS - 1}
        ks.send(comm_id, data)
        if record[request_id]["superseded"]:
            continue  # the next request follows at once and supersedes this one
        ks.wait_reply(comm_id, lambda r: r.get("id") == request_id and r["type"] in ("done", "cancelled", "error"),
                      timeout=TIMEOUT_S)


def test_eight_kernels_share_one_server(tmp_path):
    with LlamaServer(log_dir=tmp_path) as server:
        sessions = []
        try:
            for _ in range(KERNELS):
                sessions.append(remote_kernel(server).start())
            comms = [ks.open_comm() for ks in sessions]
            for ks, comm_id in zip(sessions, comms):  # connect every kernel before the clock starts
                assert ks.complete(comm_id, "import os\n", mode="line", timeout=TIMEOUT_S)[-1]["type"] == "done"
            records = [dict() for _ in sessions]
            errors: list[BaseException] = []

            def run(k):
                try:
                    _student(sessions[k], comms[k], k, records[k])
                except BaseException as e:  # noqa: BLE001 - reported below, with the others' results
                    errors.append(e)

            started = time.monotonic()
            threads = [threading.Thread(target=run, args=(k,)) for k in range(KERNELS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(TIMEOUT_S * REQUESTS)
            wall = time.monotonic() - started
            assert not errors, errors

            counts = {"done": 0, "cancelled": 0, "error": 0, "lost": 0, "duplicated": 0}
            latencies, ttfts, superseded_done = [], [], 0
            time.sleep(1.0)  # a stray late reply would arrive by now
            for ks, comm_id, record in zip(sessions, comms, records):
                messages = [m for m in ks._by_comm.get(comm_id, [])]
                for request_id, info in record.items():
                    terminal = [m for m in messages if m["content"]["data"].get("id") == request_id
                                and m["content"]["data"]["type"] in ("done", "cancelled", "error")]
                    for m in terminal:
                        validate_reply(m["content"]["data"])
                    if not terminal:
                        counts["lost"] += 1
                        continue
                    if len(terminal) > 1:
                        counts["duplicated"] += 1
                    reply = terminal[0]["content"]["data"]
                    counts[reply["type"]] += 1
                    if reply["type"] == "done":
                        superseded_done += info["superseded"]
                        if not info["superseded"]:
                            latencies.append((terminal[0]["received"] - info["sent"]) * 1e3)
                            ttfts.append(reply["stats"]["ttft_ms"])
                    if reply["type"] == "error":
                        print("error reply:", reply)
            total = KERNELS * REQUESTS
            figures = {
                "kernels": KERNELS, "requests": total, **counts, "superseded_but_done": superseded_done,
                "latency_ms_p50": round(statistics.median(latencies)),
                "latency_ms_p95": round(_percentile(latencies, 0.95)),
                "latency_ms_max": round(max(latencies)), "server_ttft_ms_p50": round(statistics.median(ttfts)),
                "server_ttft_ms_p95": round(_percentile(ttfts, 0.95)), "wall_s": round(wall, 1),
                "answered_per_s": round((counts["done"]) / wall, 2),
            }
            (tmp_path / "remote_load.json").write_text(json.dumps(figures, indent=1))
            print(f"\n[figures] remote load test: {json.dumps(figures)}")
            assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["error"] == 0, figures
            assert counts["done"] + counts["cancelled"] == total, figures
            # Only superseded requests may be cancelled; the ones a student waited for are answered.
            superseded = sum(r["superseded"] for rec in records for r in rec.values())
            assert counts["cancelled"] + superseded_done == superseded, figures
        finally:
            for ks in sessions:
                ks.stop()
