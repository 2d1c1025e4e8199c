"""Talk to a real kernel the way the JupyterLab extension does: for the tests and `codegemma kernel demo`.

    with KernelSession(extensions=["jupyter_codegemma"]) as ks:
        comm_id = ks.open_comm()
        replies = ks.complete(comm_id, "def add(a, b):\\n    return")
        ks.execute("%%codegemma\\nsort a list of words by length")

One thread reads IOPub and files every message by its parent and, for comm messages, by comm id; the
calling thread sends requests and waits for what it needs.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from typing import Callable

from .. import protocol

_ids = itertools.count(1)


class KernelSession:
    def __init__(self, kernel_name: str = "python3", *, extensions: tuple[str, ...] | list[str] = (),
                 env: dict[str, str] | None = None, kernel_spec_manager=None, startup_timeout: float = 60):
        self.kernel_name = kernel_name
        self.extensions = list(extensions)
        self.env = env
        self.kernel_spec_manager = kernel_spec_manager
        self.startup_timeout = startup_timeout
        self._lock = threading.Condition()
        self._by_parent: dict[str, list[dict]] = {}
        self._by_comm: dict[str, list[dict]] = {}
        self._stop = threading.Event()

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "KernelSession":
        from jupyter_client import KernelManager

        kwargs = {"kernel_name": self.kernel_name}
        if self.kernel_spec_manager is not None:
            kwargs["kernel_spec_manager"] = self.kernel_spec_manager
        self.km = KernelManager(**kwargs)
        extra = [f"--IPKernelApp.extensions={name}" for name in self.extensions]
        start_kwargs = {"extra_arguments": extra}
        if self.env is not None:
            start_kwargs["env"] = self.env
        self.km.start_kernel(**start_kwargs)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=self.startup_timeout)
        self._reader = threading.Thread(target=self._read_iopub, name="iopub-reader", daemon=True)
        self._reader.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)

    def __enter__(self) -> "KernelSession":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _read_iopub(self) -> None:
        import queue

        while not self._stop.is_set():
            try:
                msg = self.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            except Exception:  # channels closed
                return
            msg["received"] = time.monotonic()
            parent = msg.get("parent_header", {}).get("msg_id", "")
            with self._lock:
                self._by_parent.setdefault(parent, []).append(msg)
                if msg["msg_type"] == "comm_msg":
                    self._by_comm.setdefault(msg["content"]["comm_id"], []).append(msg)
                self._lock.notify_all()

    # --- shell ------------------------------------------------------------------------------------

    def _send_shell(self, msg_type: str, content: dict, subshell_id: str | None = None) -> str:
        msg = self.kc.session.msg(msg_type, content)
        if subshell_id is not None:
            msg["header"]["subshell_id"] = subshell_id  # JEP 91: the subshell is named in the header
        self.kc.shell_channel.send(msg)
        return msg["header"]["msg_id"]

    def execute(self, code: str, timeout: float = 60, subshell_id: str | None = None) -> tuple[dict, list[dict]]:
        """Run code; (execute_reply content, IOPub messages it caused)."""
        msg_id = self.execute_async(code, subshell_id)
        reply = self.wait_execute(msg_id, timeout)
        return reply, self.outputs(msg_id)

    def execute_async(self, code: str, subshell_id: str | None = None) -> str:
        return self._send_shell("execute_request", {"code": code, "silent": False, "store_history": True,
                                                    "user_expressions": {}, "allow_stdin": False,
                                                    "stop_on_error": True}, subshell_id)

    def wait_execute(self, msg_id: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no execute_reply within {timeout} s")
            reply = self.kc.get_shell_msg(timeout=remaining)
            if reply["parent_header"].get("msg_id") == msg_id:
                self.wait_idle(msg_id, timeout=max(deadline - time.monotonic(), 1))
                return reply["content"]

    def wait_idle(self, msg_id: str, timeout: float = 10) -> None:
        self._wait(lambda: any(m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
                               for m in self._by_parent.get(msg_id, [])), timeout, "the kernel to go idle")

    def outputs(self, msg_id: str) -> list[dict]:
        with self._lock:
            return [m for m in self._by_parent.get(msg_id, []) if m["msg_type"] != "status"]

    def create_subshell(self, timeout: float = 10) -> str:
        msg = self.kc.session.msg("create_subshell_request", {})
        self.kc.control_channel.send(msg)
        deadline = time.monotonic() + timeout
        while True:
            reply = self.kc.get_control_msg(timeout=max(deadline - time.monotonic(), 0.01))
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                return reply["content"]["subshell_id"]

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    # --- the comm ---------------------------------------------------------------------------------

    def open_comm(self, subshell_id: str | None = None, target: str = protocol.TARGET) -> str:
        comm_id = uuid.uuid4().hex
        self._send_shell("comm_open", {"comm_id": comm_id, "target_name": target, "data": {}}, subshell_id)
        return comm_id

    def send(self, comm_id: str, data, subshell_id: str | None = None) -> str:
        return self._send_shell("comm_msg", {"comm_id": comm_id, "data": data}, subshell_id)

    def replies(self, comm_id: str) -> list[dict]:
        with self._lock:
            return [m["content"]["data"] for m in self._by_comm.get(comm_id, [])]

    def wait_reply(self, comm_id: str, predicate: Callable[[dict], bool], timeout: float = 60) -> dict:
        found: list[dict] = []

        def check():
            found[:] = [d for d in (m["content"]["data"] for m in self._by_comm.get(comm_id, [])) if predicate(d)]
            return bool(found)

        self._wait(check, timeout, "a comm reply")
        return found[0]

    def request(self, comm_id: str, data: dict, timeout: float = 120, subshell_id: str | None = None) -> list[dict]:
        """Send a complete request and wait for its terminal reply; all replies with its id, in order."""
        request_id = data["id"]
        self.send(comm_id, data, subshell_id)
        self.wait_reply(comm_id, lambda d: d.get("id") == request_id and d.get("type") in
                        ("done", "cancelled", "error"), timeout)
        return [d for d in self.replies(comm_id) if d.get("id") == request_id]

    def complete(self, comm_id: str, prefix: str, suffix: str = "", timeout: float = 120,
                 subshell_id: str | None = None, **fields) -> list[dict]:
        data = {"v": protocol.VERSION, "type": "complete", "id": f"r{next(_ids)}", "prefix": prefix,
                "suffix": suffix, "language": "python", **fields}
        return self.request(comm_id, data, timeout, subshell_id)

    def status(self, comm_id: str, timeout: float = 30, subshell_id: str | None = None) -> dict:
        before = len(self.replies(comm_id))
        self.send(comm_id, {"v": protocol.VERSION, "type": "status"}, subshell_id)
        self._wait(lambda: any(m["content"]["data"].get("type") == "status"
                               for m in self._by_comm.get(comm_id, [])[before:]), timeout, "a status reply")
        return [d for d in self.replies(comm_id)[before:] if d.get("type") == "status"][0]

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"waited {timeout} s for {what}")
                self._lock.wait(min(remaining, 0.5))
