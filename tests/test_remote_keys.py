"""The server's API key: never sent over plain http:// off this machine unless allowed
(CodeGemma.allow_insecure_http), and never shown: not in reprs, error messages (a server may quote the
key it refused), outputs, `%codegemma status`, `%codegemma debug last-prompt`, comm replies or the
kernel's log. The last is checked in a real kernel that does everything with a key set.
"""

from __future__ import annotations

import json
import os
import secrets
import sys

import pytest

from jupyter_codegemma.backends.errors import SettingsError
from jupyter_codegemma.backends.remote.client import RemoteEngine, RemoteOptions
from jupyter_codegemma.backends.remote.endpoint import Endpoint, ServerError, is_loopback
from jupyter_codegemma.backends.remote.transport import request_json
from remote_fake import ScriptedServer

KEY = "sk-test-" + secrets.token_hex(16)


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("CODEGEMMA_API_KEY", KEY)
    return KEY


def test_loopback_hosts():
    for host in ("127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST", "localhost."):
        assert is_loopback(host), host
    for host in ("10.0.0.1", "llm.internal", "::ffff:10.0.0.1", "localhost.example.org", "0.0.0.0"):
        assert not is_loopback(host), host


def test_a_key_goes_over_plain_http_only_to_loopback_unless_allowed(key):
    with pytest.raises(SettingsError) as info:
        RemoteOptions(url="http://llm.internal:8000").endpoint()
    message = str(info.value)
    assert "refusing to send the API key ($CODEGEMMA_API_KEY) over plain http:// to llm.internal" in message
    assert "https://" in message and "allow_insecure_http=True" in message and KEY not in message
    assert "\n" not in message
    allowed = RemoteOptions(url="http://llm.internal:8000", allow_insecure_http=True).endpoint()
    assert allowed.headers()["Authorization"] == f"Bearer {KEY}"
    for url in ("https://llm.internal", "http://127.0.0.1:8000", "http://localhost:8000/v1", "http://[::1]:8000"):
        assert RemoteOptions(url=url).endpoint().api_key == KEY, url
    Endpoint("http://llm.internal:8000")  # no key: nothing to protect


def test_a_key_with_characters_a_header_cannot_carry_is_refused_without_showing_it(monkeypatch):
    monkeypatch.setenv("CODEGEMMA_API_KEY", "sk-abc\nInjected: yes")
    with pytest.raises(SettingsError) as info:
        RemoteOptions(url="http://127.0.0.1:9").endpoint()
    assert "$CODEGEMMA_API_KEY" in str(info.value) and "sk-abc" not in str(info.value)
    monkeypatch.setenv("CODEGEMMA_API_KEY", f"  {KEY}\n")  # a key file's newline: not part of the key
    assert RemoteOptions(url="http://127.0.0.1:9").endpoint().api_key == KEY


def test_reprs_never_hold_the_key(key):
    endpoint = RemoteOptions(url="http://user:password@127.0.0.1:9/v1").endpoint()
    options = RemoteOptions(url="http://user:password@127.0.0.1:9/v1", api_key_env="CODEGEMMA_API_KEY")
    for text in (repr(endpoint), str(endpoint), repr(options), repr([endpoint, options])):
        assert KEY not in text and "password" not in text, text
    assert "api_key=<set>" in repr(endpoint)


def test_error_messages_never_hold_the_key(key):
    with ScriptedServer() as server:
        engine = RemoteEngine.load(RemoteOptions(url=server.url, retries=0))
        assert server.requests[-1]["headers"]["Authorization"] == f"Bearer {KEY}"
        for route in (lambda h: h.json({"error": {"message": f"Invalid API key {h.headers['Authorization']}"}}, 401),
                      lambda h: h.sse([{"error": {"message": f"bad key {KEY}"}}]),
                      lambda h: h.sse([f"not json {KEY}"]),
                      lambda h: h.raw(f"<html><title>{KEY}</title></html>".encode(), "text/html")):
            server.routes["/v1/completions"] = route
            with pytest.raises(ServerError) as info:
                engine.generate("x").wait()
            assert KEY not in str(info.value) and "<API key>" in str(info.value), str(info.value)
        server.routes["/v1/models"] = lambda h: h.raw(f"oops {KEY}".encode())
        with pytest.raises(ServerError) as info:
            request_json(engine._endpoint, "GET", "/v1/models")
        assert KEY not in str(info.value)


# --- a real kernel with a key ---------------------------------------------------------------------------


def _kernel_logging_to(path, env, monkeypatch):
    """A thin-client kernel whose own stdout and stderr (its log, at DEBUG) go to `path`."""
    from jupyter_client import KernelManager

    from jupyter_codegemma.cli.kernel_client import KernelSession

    start = KernelManager.start_kernel
    log = open(path, "wb")

    def start_kernel(km, **kwargs):
        kwargs["extra_arguments"] = [*kwargs.get("extra_arguments", []), "--IPKernelApp.log_level=DEBUG"]
        return start(km, stdout=log, stderr=log, **kwargs)

    monkeypatch.setattr(KernelManager, "start_kernel", start_kernel)
    return KernelSession(extensions=["jupyter_codegemma"], env=env), log


@pytest.mark.slow
def test_the_key_never_appears_in_a_kernel(tmp_path, monkeypatch):
    with ScriptedServer(model="codegemma-2b", answer="def add(a, b):\n    return a + b\n```\n") as server:
        def guarded(route):  # the server wants the key, and quotes it when it is wrong
            def check(h):
                sent = h.headers.get("Authorization", "")
                if sent != f"Bearer {KEY}":
                    h.json({"error": {"message": f"Invalid API key: {sent}"}}, 401)
                else:
                    route(h)
            return check

        server.routes = {path: guarded(route) for path, route in server.routes.items()}
        env = {**os.environ, "CODEGEMMA_API_KEY": KEY}
        env.pop("CODEGEMMA_SERVER_URL", None)
        ks, log = _kernel_logging_to(tmp_path / "kernel.log", env, monkeypatch)
        texts: list[str] = []
        with ks:
            log.close()
            comm_id = ks.open_comm()

            def run(code, timeout=60):
                reply, outputs = ks.execute(code, timeout=timeout)
                texts.append(json.dumps([reply, outputs], default=str))
                return reply, outputs

            run("import logging, sys\nlogging.basicConfig(level=logging.DEBUG, stream=sys.__stderr__, force=True)")
            run("%codegemma status")
            reply, outputs = run(f"%codegemma use {server.url}")
            assert "using codegemma-2b" in texts[-1], texts[-1]
            run("%codegemma status")
            texts.append(json.dumps(ks.status(comm_id)))
            done = ks.complete(comm_id, "def add(a, b):\n    return", "\n", mode="line")
            assert done[-1]["type"] == "done", done
            assert run("%%codegemma --max-new-tokens 16\nadd two numbers")[0]["status"] == "ok"
            run("1 / 0")
            run("%codegemma explain")
            run("%codegemma debug last-prompt")
            run("%codegemma debug last-prompt --ids")
            run("%codegemma help")
            run("%config CodeGemma")
            # Failing requests: a refused key (the server quotes it), an error event quoting it.
            server.routes["/v1/completions"] = lambda h: h.json(
                {"error": {"message": f"Invalid API key: {h.headers.get('Authorization')}"}}, 401)
            failed = ks.complete(comm_id, "x = ", mode="line")[-1]
            assert failed["type"] == "error" and "<API key>" in failed["message"], failed
            run("%%codegemma\nadd two numbers")
            assert "HTTP 401" in texts[-1] and "<API key>" in texts[-1], texts[-1]
            server.routes["/v1/completions"] = lambda h: h.sse([{"error": {"message": f"key {KEY} expired"}}])
            run("%%codegemma\nadd two numbers")
            assert "<API key> expired" in texts[-1], texts[-1]
            # Plain http:// to another machine is refused before anything is sent.
            reply, outputs = run("%codegemma use http://llm.example.invalid:8000")
            assert "refusing to send the API key" in texts[-1] and "allow_insecure_http" in texts[-1], texts[-1]
            run("%codegemma status")
            texts.append(json.dumps(ks.replies(comm_id)))
            with ks._lock:
                texts.append(json.dumps(ks._by_parent, default=str))  # every IOPub message of the session
        kernel_log = (tmp_path / "kernel.log").read_text(errors="replace")
    assert "HTTP Request: POST" in kernel_log or "httpcore" in kernel_log, kernel_log[-2000:]  # the log was on
    assert any(r["headers"].get("Authorization") == f"Bearer {KEY}" for r in server.requests)  # the key was sent
    assert not [r for r in server.requests if "example.invalid" in r["headers"].get("Host", "")]
    for text in texts + [kernel_log]:
        assert KEY not in text, text[max(text.find(KEY) - 300, 0):text.find(KEY) + 100]
    print(f"\n[figures] {len(texts)} outputs and a {len(kernel_log)}-character kernel log, without the key",
          file=sys.stderr)
