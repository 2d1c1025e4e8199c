"""Level-3 hints from the model: where a fix comes from (the kernel's engine worker), and the bookkeeping of
a fix being computed (which exercise and code version asked, how to cancel it)."""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass
from typing import Callable

from .checker import CheckResult
from .hints import NO_CONFIDENT, ModelFix, model_fix
from .model import Exercise
from .sandbox import run_tests

# (exercise, source, check result) -> ModelFix, optionally with a `cancel` event keyword (set when the
# answer is no longer wanted); None where no model is available
FixProvider = Callable[[Exercise, str, CheckResult], ModelFix]


@dataclass
class FixRequest:
    """A level-3 hint being computed: for which exercise and code version (`tag`), and its cancel event."""

    tag: tuple[int, int]  # (exercise index, code version) when Hint was pressed
    key: tuple[str, str]  # (exercise id, code): the answer is kept for this code
    cancel: threading.Event
    thread: threading.Thread


def accepts_cancel(provider) -> bool:
    try:
        params = inspect.signature(provider).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "cancel" or p.kind is p.VAR_KEYWORD for p in params)




def ask_for_fix(provider: FixProvider | None, exercise: Exercise, source: str, result: CheckResult,
                cancel: threading.Event) -> ModelFix:
    """The provider's fix (passing `cancel` where it takes one); a failure is an unanswered ModelFix."""
    try:
        if provider is None:
            raise RuntimeError("no model here")
        if accepts_cancel(provider):
            return provider(exercise, source, result, cancel=cancel)
        return provider(exercise, source, result)
    except Exception as e:  # the model failed to load, or the kernel is shutting down
        return ModelFix(None, "", f"the model failed: {e}", answered=False)


def fix_text(fix: ModelFix) -> str:
    """What level 3 shows for a fix: the verified diff, or why there is none."""
    return fix.message() if fix.shown else f"{NO_CONFIDENT}\n({fix.reason})"


def service_fix_provider(service, *, n: int = 5, timeout: float = 300) -> FixProvider:
    """Level-3 fixes computed on the kernel's engine worker (one model, one queue for everything).

    A `cancel` event set while the fix is queued or computed gives the worker back: the job is dropped
    if it has not started, else it stops before its next sample (and its answer is a cancelled one)."""
    from ..kernel.worker import Job
    from .hints import engine_sampler

    class _Stop(Exception):
        pass

    def provide(exercise: Exercise, source: str, result: CheckResult,
                cancel: threading.Event | None = None) -> ModelFix:
        box: dict = {}
        done = threading.Event()
        cancelled = ModelFix(None, "", "cancelled", answered=False)

        def verify(code: str) -> bool:
            return run_tests(code, exercise.tests).passed

        def run(engine):
            sample = engine_sampler(engine, job.cancel)

            def sample_until_cancelled(prompt, **kwargs):
                if job.cancel.is_set():
                    raise _Stop
                return sample(prompt, **kwargs)

            try:
                box["fix"] = model_fix(sample_until_cancelled, source, result, n=n, verify=verify)
            except _Stop:
                box["fix"] = cancelled
            done.set()

        def failed(code, message):
            box["fix"] = ModelFix(None, "", f"the model failed: {message}", answered=False)
            done.set()

        job = Job(run, on_error=failed, on_cancelled=lambda: (box.setdefault("fix", cancelled), done.set()))
        service.submit(job)
        waited, step = 0.0, 0.1
        while not done.wait(step):
            waited += step
            if (cancel is not None and cancel.is_set()) or waited >= timeout:
                job.cancel.set()
                job.drop_if_queued()
                if cancel is not None and cancel.is_set():
                    return cancelled
                return ModelFix(None, "", f"the model took longer than {timeout:g} s", answered=False)
        return box["fix"]

    return provide
