"""Level-3 hints: where a fix comes from (the repair search, ranked on the kernel's engine worker), and the
bookkeeping of a fix being computed (which exercise and code version asked, how to cancel it)."""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass
from typing import Callable

from .checker import CheckResult
from .hints import NO_CONFIDENT, ModelFix
from .model import Exercise

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


def service_fix_provider(service, *, n: int = 3, timeout: float = 300) -> FixProvider:
    """Level-3 fixes: the repair search (repair.py) on this thread, its verified candidates ranked by the
    model on the kernel's engine worker (one model, one queue for everything), and — only when the search
    finds nothing — `n` fixes sampled from the model joining the same verified pool.

    A `cancel` event set while a model job is queued or computed gives the worker back: the job is dropped
    if it has not started, else it stops before its next sample (and its answer is a cancelled one). A
    model that fails or takes longer than `timeout` leaves the search's own ranking (by edit size)."""
    from ..kernel.worker import Job
    from .hints import engine_sampler
    from .repair import as_model_fix, model_samples, search_repairs

    class _Stop(Exception):
        pass

    def on_worker(work, cancel: threading.Event | None):
        """`work(engine, job_cancel)` on the engine worker; its value, or _Stop when cancelled or late."""
        box: dict = {}
        done = threading.Event()

        def run(engine):
            try:
                box["value"] = work(engine, job.cancel)
            except _Stop:
                pass
            done.set()

        def failed(code, message):
            box["error"] = message
            done.set()

        job = Job(run, on_error=failed, on_cancelled=done.set)
        service.submit(job)
        waited, step = 0.0, 0.1
        while not done.wait(step):
            waited += step
            if (cancel is not None and cancel.is_set()) or waited >= timeout:
                job.cancel.set()
                job.drop_if_queued()
                raise _Stop
        if "error" in box:
            raise RuntimeError(box["error"])
        if "value" not in box:
            raise _Stop
        return box["value"]

    def provide(exercise: Exercise, source: str, result: CheckResult,
                cancel: threading.Event | None = None) -> ModelFix:
        cancelled = ModelFix(None, "", "cancelled", answered=False)
        notes: list[str] = []
        failed = threading.Event()  # the model was asked for fixes and gave none: asking again may help

        def scorer(texts):
            try:
                return on_worker(lambda engine, stop: engine.score(texts), cancel)
            except Exception as e:  # the model failed or was too slow: rank by edit size
                notes.append(f"the model could not rank the fixes ({str(e) or 'cancelled'})")
                return None

        def samples():
            def draw(engine, stop):
                sample = engine_sampler(engine, stop)

                def sample_until_cancelled(prompt, **kwargs):
                    if stop.is_set():
                        raise _Stop
                    return sample(prompt, **kwargs)

                return model_samples(sample_until_cancelled, source, result, n=n)

            try:
                return on_worker(draw, cancel)
            except Exception as e:
                notes.append(f"no fixes from the model ({str(e) or 'cancelled'})")
                failed.set()
                return []

        found = search_repairs(source, exercise.tests, scorer=scorer, samples=samples)
        if cancel is not None and cancel.is_set():
            return cancelled
        found.notes += notes
        fix = as_model_fix(found, source)
        fix.answered = fix.shown or not failed.is_set()
        return fix

    return provide
