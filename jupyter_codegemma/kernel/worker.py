"""One engine, one worker thread, one queue: every request in the kernel goes through here.

Comm handlers (on shell or subshell threads) and magics (on the main thread) submit jobs; the worker
loads the model on first use and runs the jobs one at a time, so the engine never sees two callers.
A job is cancelled by its token: before it starts it is dropped, while it runs the engine stops
within one decode step.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

from .. import protocol
from ..backends import BackendSpec, load_backend
from .policy import Allowed, PolicyState, allowed
from .settings import CodeGemma

log = logging.getLogger("jupyter_codegemma")

MAX_PENDING = 16  # queued jobs; beyond that requests get `busy`
# What a job asks of the model, for `%codegemma debug last-prompt KIND`.
PROMPT_KINDS = ("magic", "conversation", "completion")


class Job:
    """Work for the engine. `run(engine)` happens on the worker; `finish` is called exactly once."""

    def __init__(self, run: Callable, *, on_cancelled: Callable[[], None] = lambda: None,
                 on_error: Callable[[str, str], None] = lambda code, message: None,
                 progress: Callable[[str], None] | None = None, kind: str = ""):
        self.run = run
        self.kind = kind  # one of PROMPT_KINDS, or "" for work that prompts nothing (a load)
        self.cancel = threading.Event()
        self.on_cancelled, self.on_error, self.progress = on_cancelled, on_error, progress
        self.finished = threading.Event()
        self._lock = threading.Lock()
        self._state = "queued"  # -> running -> finished, or queued -> finished

    def start(self) -> bool:
        with self._lock:
            if self._state != "queued":
                return False
            self._state = "running"
            return True

    def drop_if_queued(self) -> bool:
        """Cancel a job that has not started; True if it was dropped (the caller reports it)."""
        with self._lock:
            if self._state != "queued":
                return False
            self._state = "finished"
        self.cancel.set()
        self.finished.set()
        return True

    def _end(self) -> None:
        with self._lock:
            self._state = "finished"
        self.finished.set()


class Service:
    def __init__(self, settings: CodeGemma, namespace: Callable[[], dict] | None = None):
        self.settings = settings
        self.namespace = namespace  # the user's namespace (shell.user_ns), for the kernel-context facts
        self.last_facts = None  # the last completion's KernelFacts, for `%codegemma debug last-prompt`
        self.policy = PolicyState()  # the notebook's AI policy, as the labextension or %codegemma policy set it
        self.engine = None
        self._engine_key = None
        self.state = "loading"  # until the first load finishes; see status()
        self.message = ""
        self._loaded_once = False
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._pending = 0
        self._running: Job | None = None
        # The last prompt of each kind of job: (ids, text) as the backend ran it.
        self.last_prompts: dict[str, tuple[list[int], str]] = {}
        self._last_seen: tuple[list[int], str] = ([], "")  # the backend's last prompt after the last job
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="codegemma-engine", daemon=True)
        self._thread.start()

    # --- submitting ---------------------------------------------------------------------------

    def submit(self, job: Job) -> Job:
        with self._lock:
            if self._pending >= MAX_PENDING:
                raise protocol.ProtocolError(protocol.BUSY, f"{self._pending} requests are waiting for the model; "
                                             f"try again when they are answered")
            self._pending += 1
        self._queue.put(job)
        return job

    def preload(self) -> None:
        """Start loading the model in the background, unless it is loaded (or loading), or the last load
        failed: a status request (the status bar asks every second while it says loading) must not retry a
        model that does not load; a request that needs the model, `%codegemma load` or `use` tries again."""
        if self.engine is None and self._pending == 0 and self.state != "error":
            try:
                self.submit(Job(lambda engine: None))
            except protocol.ProtocolError:
                pass

    def allowed(self) -> Allowed:
        """What may run now: the kernel's switches and the notebook's policy (kernel/policy.py)."""
        return allowed(self.settings, self.policy.policy)

    def kernel_facts(self, prefix: str):
        """The live kernel's facts for a cursor at the end of `prefix` (kernel/live_namespace.py), or
        None when the kernel_context setting is off or there is no namespace (a kernel-less engine)."""
        if not self.settings.kernel_context or self.namespace is None:
            return None
        from .live_namespace import read_facts

        self.last_facts = read_facts(self.namespace(), prefix)
        return self.last_facts

    def visible_names(self) -> frozenset[str]:
        """The names code in the notebook can use without defining them: the user's and the builtins."""
        import builtins

        names = dict.copy(self.namespace()) if self.namespace is not None else {}
        return frozenset(n for n in names if type(n) is str) | frozenset(vars(builtins))

    def status(self) -> dict:
        engine = self.engine
        info = engine.info() if engine is not None else {}
        if self.state == "error":
            model = self.settings.model_label()
        else:
            model = self.settings.model_label(info.get("model", ""))
        state, running = self.state, self._running
        if state == "busy" and running is not None and running.cancel.is_set():
            state = "ready"  # stopping within one decode step: nobody waits for it (a cell run after typing)
        policy = self.policy.policy
        return protocol.status(model=model, state=state, device=info.get("device", ""),
                               fim=bool(engine is not None and engine.has_fim),
                               completions_enabled=self.allowed().completions,
                               hints_enabled=self.settings.hints_enabled, message=self.message or None,
                               policy=policy.to_json() if policy is not None else None)

    def forget_engine(self) -> None:
        """After a switch of backend (`%codegemma use`): drop the old engine and its error, unless a job
        is using it; the next request loads what the settings now say."""
        with self._lock:
            if self._pending == 0 and self.state != "busy":
                self.engine, self._engine_key = None, None
                self.state, self.message = "loading", ""

    def _remember_prompt(self, job: Job, engine) -> None:
        ids, text = list(getattr(engine, "last_prompt_ids", []) or []), getattr(engine, "last_prompt", "") or ""
        if job.kind and (ids or text) and (ids, text) != self._last_seen:
            self.last_prompts[job.kind] = (ids, text)
        self._last_seen = (ids, text)

    def answered(self, job: Job) -> None:
        """`job` has sent its last reply: the model is no longer busy with it, though the worker may
        still be tidying up (a status asked right after the answer says "ready")."""
        with self._lock:
            if self._running is job and self.state == "busy":
                self.state = "ready"

    def shutdown(self) -> None:
        self._queue.put(None)

    # --- the worker ---------------------------------------------------------------------------

    def _work(self) -> None:
        from ..backends.errors import CodeGemmaError, PromptError

        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                self._pending -= 1
            if not job.start():
                continue  # dropped while queued: whoever dropped it has reported it
            try:
                if job.cancel.is_set():
                    job.on_cancelled()
                    continue
                try:
                    wanted_server = bool(self.settings.server_url)
                    engine = self._engine_for(job.progress)
                except Exception as e:
                    kept = (f"; still using {self._label(self.engine)}" if self.engine is not None else "")
                    job.on_error(protocol.MODEL_ERROR, f"{_load_failure(e, wanted_server)}{kept}")
                    continue
                if job.cancel.is_set():
                    job.on_cancelled()
                    continue
                with self._lock:
                    self.state, self._running = "busy", job
                job.run(engine)
                self._remember_prompt(job, engine)
            except PromptError as e:
                job.on_error(protocol.PROMPT_ERROR, str(e))
            except CodeGemmaError as e:
                job.on_error(protocol.MODEL_ERROR, str(e))
            except Exception as e:  # a bug, or the device failing: keep the kernel and the worker alive
                log.exception("codegemma: request failed")
                job.on_error(protocol.INTERNAL, f"{type(e).__name__}: {e}")
            finally:
                with self._lock:
                    self._running = None
                    if self.state == "busy":
                        self.state = "ready"
                job._end()

    def _backend_spec(self) -> BackendSpec:
        """What the settings ask for: a server (a thin client: no local model), else the JAX engine."""
        s = self.settings
        if s.server_url:
            return BackendSpec(server_url=s.server_url, server_model=s.server_model, api_key_env=s.api_key_env,
                               server_fim=s.server_fim, context_len=s.context_len,
                               allow_insecure_http=s.allow_insecure_http)
        return BackendSpec(model=s.model, dtype=s.dtype, context_len=s.context_len)

    def _engine_for(self, progress: Callable[[str], None] | None):
        """The engine for the current settings, loading it (again) when they changed.

        A working engine is replaced only once the new one has loaded: when the new one fails, the
        old one stays (and the settings go back to it), so a mistyped path does not leave the
        kernel without a model, nor make every later request retry the bad path."""
        key = self._backend_spec()
        if self.engine is not None and key == self._engine_key:
            return self.engine
        old, old_key = self.engine, self._engine_key
        self.state, self.message = "loading", ""
        try:
            engine = load_backend(key, progress)
            engine.warm_up(progress)
        except Exception as e:
            if old is None:
                self.state, self.message = "error", str(e)
            else:
                self._restore_settings(old_key)
                self.state, self.message = "ready", f"kept {self._label(old)}: {e}"
            raise
        self.engine, self._engine_key = engine, key
        self.state, self.message = "ready", ""
        return engine

    def _label(self, engine) -> str:
        """The name of a loaded engine's model, as status() gives it."""
        return self.settings.model_label(engine.info().get("model", "")) or "the previous model"

    def _restore_settings(self, spec: BackendSpec) -> None:
        """Point the settings back at `spec` (the backend that keeps working after a failed switch)."""
        s = self.settings
        if spec.remote:
            s.server_url, s.server_model, s.server_fim = spec.server_url, spec.server_model, spec.server_fim
        else:
            s.server_url, s.model, s.dtype = "", spec.model, spec.dtype
        if spec.remote:
            s.api_key_env, s.allow_insecure_http = spec.api_key_env, spec.allow_insecure_http
        s.context_len = spec.context_len


def _load_failure(e: Exception, server: bool) -> str:
    """One line on why the backend did not load: a server that did not answer, one that answered
    wrongly, a setting (the API key's rules) that forbids it, or a model that did not load."""
    from ..backends.errors import CodeGemmaError, SettingsError

    if isinstance(e, SettingsError):
        return str(e)
    if not isinstance(e, CodeGemmaError):  # not one of ours: name its kind (a KeyError's text is just the key)
        return f"{'the server could not be used' if server else 'the model did not load'}: {type(e).__name__}: {e}"
    if not server:
        return f"the model did not load: {e}"
    from ..backends.remote import ServerUnavailable

    return f"the server did not answer: {e}" if isinstance(e, ServerUnavailable) else f"the server could not be used: {e}"
