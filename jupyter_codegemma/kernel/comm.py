"""The comm target `jupyter_codegemma`: completion requests in, streamed suggestions out.

Handlers run on whichever thread ipykernel dispatches the comm message on (the main shell, or a
subshell's thread with ipykernel >= 7, which is what keeps completions answering while a cell runs).
They only validate and queue; the service's worker thread runs the engine and sends the replies.

Replies are sent from the worker inside a copy of the request's context: ipykernel keeps the parent
message in a ContextVar, so each reply carries its request's header (subshell_id included) and
ipykernel routes the frontend's next messages on that comm back to the same subshell. IOPub sends
from any thread are safe: ipykernel queues them to its IOPub thread.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time

from .. import protocol
from .live_namespace import with_facts
from .worker import Job, Service

log = logging.getLogger("jupyter_codegemma")

PARTIAL_INTERVAL_S = 0.04  # at most ~25 partial messages a second


class CompletionComm:
    """One opened comm (one notebook panel): its requests, and the newest one that supersedes the rest."""

    def __init__(self, comm, service: Service):
        self.comm = comm
        self.service = service
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        comm.on_msg(self.on_msg)
        comm.on_close(self.on_close)
        # `%codegemma policy ...` changed the notebook's policy: ask the frontend to store it in the metadata
        service.policy.listen(self._announce_policy)

    # --- handlers (shell/subshell threads): validate and queue --------------------------------

    def on_msg(self, msg) -> None:
        self.handle(msg.get("content", {}).get("data"))

    def handle(self, data) -> None:
        try:
            request = protocol.parse_request(data)
            if isinstance(request, protocol.Complete):
                self._complete(request)
            elif isinstance(request, protocol.Cancel):
                self._cancel(request.id)
            elif isinstance(request, protocol.Policy):  # the notebook's metadata, on comm open or changed
                self.service.policy.set(request.policy)
                self._send(self.service.status())
            else:
                self.service.preload()
                self._send(self.service.status())
        except protocol.ProtocolError as e:
            self._send(e.reply())
        except Exception as e:  # never let a message take the handler down
            log.exception("codegemma: comm message failed")
            self._send(protocol.error(protocol.INTERNAL, f"{type(e).__name__}: {e}"))

    def on_close(self, msg) -> None:
        self.service.policy.unlisten(self._announce_policy)
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
        for job in jobs:
            job.cancel.set()

    def _complete(self, request: protocol.Complete) -> None:
        allowed = self.service.allowed()  # the kernel's switches and the notebook's policy
        if not allowed.completions:
            raise protocol.ProtocolError(protocol.DISABLED, allowed.refusal("completions"), request.id)
        context = contextvars.copy_context()  # carries this request's parent header to the worker
        job = Job(lambda engine: self._run_complete(engine, request, job, context),
                  on_cancelled=lambda: self._finish(job, request.id, protocol.cancelled(request.id), context),
                  on_error=lambda code, message: self._finish(
                      job, request.id, protocol.error(code, message, request.id), context), kind="completion")
        with self._lock:
            older = [(i, j) for i, j in self._jobs.items()]
            self._jobs[request.id] = job
        for older_id, older_job in older:  # superseded: cancelled on the kernel, not just ignored
            self._stop(older_id, older_job)
        try:
            self.service.submit(job)
        except protocol.ProtocolError as e:
            with self._lock:
                self._jobs.pop(request.id, None)
            e.id = request.id
            raise

    def _cancel(self, request_id: str) -> None:
        with self._lock:
            job = self._jobs.get(request_id)
        if job is not None:  # an id that is not pending (done already, or never sent) gets no reply
            self._stop(request_id, job)

    def _stop(self, request_id: str, job: Job) -> None:
        if job.drop_if_queued():
            self._finish(job, request_id, protocol.cancelled(request_id))
        else:
            job.cancel.set()  # the worker stops within one decode step and sends `cancelled`

    # --- the worker thread -------------------------------------------------------------------

    def _run_complete(self, engine, request: protocol.Complete, job: Job, context) -> None:
        mode = request.mode or self.service.settings.mode
        # Facts from the live namespace go into the prompt text, so a server backend gets them too;
        # where the valid names at the cursor are known, the backend keeps the completion to them.
        facts = self.service.kernel_facts(request.prefix)
        prefix, constraint = request.prefix, {}
        if facts is not None:
            prefix = with_facts(request.prefix, facts)
            if facts.continuations() and accepts(engine, "allowed_names"):
                constraint["allowed_names"] = facts.continuations()
            if accepts(engine, "namespace"):  # names the suggestion may use without defining them
                constraint["namespace"] = self.service.visible_names()
        completion = engine.complete(prefix, request.suffix, mode=mode, path=request.path,
                                     max_new_tokens=request.max_new_tokens, cancel=job.cancel, **constraint)
        sent, last = "", 0.0
        for text in completion:
            now = time.monotonic()
            if text != sent and now - last >= PARTIAL_INTERVAL_S and not job.cancel.is_set():
                self._send(protocol.partial(request.id, text), context)
                sent, last = text, now
        result = completion.result
        if job.cancel.is_set():
            self._finish(job, request.id, protocol.cancelled(request.id), context)
            return
        stats = result.stats
        self._finish(job, request.id, protocol.done(
            request.id, result.text, prompt_tokens=stats.prompt_tokens, reused_tokens=stats.reused_tokens,
            new_tokens=stats.new_tokens, ttft_ms=result.ttft_ms, total_ms=result.total_ms,
            context_facts=facts.count if facts is not None else None), context)

    def _announce_policy(self, policy: dict | None) -> None:
        self._send(protocol.policy(policy))

    # --- sending -------------------------------------------------------------------------------

    def _finish(self, job: Job, request_id: str, reply: dict, context=None) -> None:
        with self._lock:
            if self._jobs.get(request_id) is job:
                del self._jobs[request_id]
        self.service.answered(job)
        self._send(reply, context)

    def _send(self, reply: dict, context=None) -> None:
        try:
            if context is None:
                self.comm.send(reply)
            else:
                context.run(self.comm.send, reply)
        except Exception:  # a closed comm, a kernel shutting down: nothing to tell anyone
            log.debug("codegemma: could not send %s", reply.get("type"), exc_info=True)


def accepts(engine, parameter: str) -> bool:
    """Whether the backend's `complete` takes `parameter` (`allowed_names`: keep a completion to given
    names; `namespace`: the names it may use besides those the code binds)."""
    import inspect

    try:
        return parameter in inspect.signature(engine.complete).parameters
    except (TypeError, ValueError):
        return False


def register_target(service: Service, comm_manager=None):
    """Register the comm target; returns the manager (to unregister with)."""
    if comm_manager is None:
        import comm

        comm_manager = comm.get_comm_manager()

    def open_comm(comm, open_msg) -> None:
        handler = CompletionComm(comm, service)
        data = open_msg.get("content", {}).get("data")
        if data:  # a first request may ride on comm_open
            handler.handle(data)

    comm_manager.register_target(protocol.TARGET, open_comm)
    return comm_manager
