"""What the kernel's status says (issue 20): the model's one name while loading and once loaded, a failed
load that keeps the working model (named the same way), and no "busy" for a job that is only stopping.

A fake backend stands in for the model: these are the service's rules, not the engine's.
"""

from __future__ import annotations

import time

import pytest

from jupyter_codegemma.backends.errors import CheckpointError
from jupyter_codegemma.kernel import worker
from jupyter_codegemma.kernel.settings import DEFAULT_MODEL_LABEL, CodeGemma, display_model_name
from jupyter_codegemma.kernel.worker import Job, Service


class FakeEngine:
    has_fim = False

    def info(self) -> dict:
        return {"model": "Gemma 3 270m", "device": "cpu"}  # the default GGUF's general.name

    def warm_up(self, progress=None) -> None:
        pass


@pytest.fixture
def loads():
    return []


@pytest.fixture
def service(monkeypatch, loads):
    def load(spec, progress):
        loads.append(spec.model)
        if spec.model:
            raise CheckpointError(spec.model, "no such file")
        return FakeEngine()

    monkeypatch.setattr(worker, "load_backend", load)
    service = Service(CodeGemma())
    yield service
    service.shutdown()


def _run(service: Service, run=lambda engine: None) -> list:
    errors = []
    job = service.submit(Job(run, on_error=lambda code, message: errors.append((code, message))))
    assert job.finished.wait(10)
    return errors


@pytest.mark.parametrize("name, shown", [
    ("Gemma 3 270m", "Gemma 3 270M"), ("Gemma 3 270M", "Gemma 3 270M"), ("CodeGemma 7b it", "CodeGemma 7B it"),
    ("Gemma 2 2.6b", "Gemma 2 2.6B"),
    ("gemma-3-270m", "gemma-3-270m"), ("google/codegemma-2b", "google/codegemma-2b"),  # ids stay as they are
    ("/models/x 2b.gguf", "/models/x 2b.gguf"),
])
def test_display_model_name(name, shown):
    assert display_model_name(name) == shown


def test_the_default_model_has_one_name_while_loading_and_once_loaded(service):
    assert service.status()["state"] == "loading"
    assert service.status()["model"] == DEFAULT_MODEL_LABEL == "Gemma 3 270M"
    assert _run(service) == []
    status = service.status()
    assert (status["state"], status["model"]) == ("ready", "Gemma 3 270M")


def test_a_failed_load_keeps_the_model_and_names_it_as_the_status_does(service):
    assert _run(service) == []
    service.settings.model = "/nonexistent.gguf"
    [(code, message)] = _run(service)
    assert code == "model_error" and "/nonexistent.gguf" in message and message.endswith("still using Gemma 3 270M")
    status = service.status()
    assert (status["state"], status["model"]) == ("ready", "Gemma 3 270M")
    assert status["message"].startswith("kept Gemma 3 270M: ")
    assert service.settings.model == ""  # back to the model that works


def test_no_model_yet_then_a_failed_load_is_an_error_and_a_good_load_clears_it(service):
    service.settings.model = "/nonexistent.gguf"
    assert _run(service)
    status = service.status()
    assert status["state"] == "error" and status["model"] == "/nonexistent.gguf"
    service.settings.model = ""
    assert _run(service) == []
    status = service.status()
    assert (status["state"], status["model"], status.get("message")) == ("ready", "Gemma 3 270M", None)


def test_busy_while_a_job_runs_and_not_once_it_is_cancelled(service):
    assert _run(service) == []
    seen = {}

    def run(engine):
        seen["running"] = service.status()["state"]
        job.cancel.set()  # what a `cancel` message does: the engine stops within one decode step
        seen["stopping"] = service.status()["state"]

    job = Job(run)
    service.submit(job)
    assert job.finished.wait(10)
    assert seen == {"running": "busy", "stopping": "ready"}
    assert service.status()["state"] == "ready"


def test_a_status_request_does_not_retry_a_model_that_failed_to_load(service, loads):
    service.settings.model = "/nonexistent.gguf"
    assert _run(service)
    assert loads == ["/nonexistent.gguf"] and service.status()["state"] == "error"
    for _ in range(3):  # what the comm does for each status request
        service.preload()
    assert _run(service) and loads == ["/nonexistent.gguf"] * 2  # only a request that needs the model tries again
    service.settings.model = ""
    assert _run(service) == [] and service.status()["state"] == "ready"


def test_a_status_request_starts_the_first_load(service, loads):
    service.preload()
    for _ in range(500):
        if service.status()["state"] == "ready":
            break
        time.sleep(0.01)
    assert loads == [""] and service.status()["state"] == "ready"
