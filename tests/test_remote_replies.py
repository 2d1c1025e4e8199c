"""Every kind of wrong answer a server can give ends in one line that names the server and says what
was wrong (a CodeGemmaError: the magics print it as `codegemma: ...`, the comm replies `error`), never
a KeyError or a traceback, and the next request works: wrong JSON shapes, web pages, garbled and cut
streams, fields of the wrong type, 50 MB bodies (refused without being held), servers that stop
mid-answer or never answer. Then the same through a real kernel (`%%codegemma --chat`,
`%codegemma explain`). And chats: instruction models use the server's chat route; a server without a
tokenize route still serves chat, explain and fix (token counts estimated).
"""

from __future__ import annotations

import json
import os
import time
import tracemalloc

import pytest

from jupyter_codegemma.backends.base import token_counter
from jupyter_codegemma.backends.chat import Turn
from jupyter_codegemma.backends.errors import CodeGemmaError, PromptError
from jupyter_codegemma.backends.remote.client import CHARS_PER_TOKEN, RemoteEngine, RemoteOptions
from jupyter_codegemma.backends.remote.replies import JSON_LIMIT
from conftest import stream_text
from remote_fake import ScriptedServer, completion_events

MB = 2**20
PAGE = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"


@pytest.fixture
def server():
    with ScriptedServer() as s:
        yield s


def _engine(url, **options):
    return RemoteEngine.load(RemoteOptions(url=url, retries=1, backoff=0.01, **options))


def _one_line(error: BaseException, server) -> str:
    message = str(error)
    assert isinstance(error, CodeGemmaError), repr(error)
    assert "\n" not in message and server.url.split("//")[1] in message, message
    return message


def _fails(server, call, match: str) -> str:
    with pytest.raises(CodeGemmaError) as info:
        call()
    message = _one_line(info.value, server)
    assert match in message, message
    return message


def _tokens(h):
    """A llama.cpp-style /tokenize: one token a word, <bos> (2) first when asked."""
    text, special = h.body.get("content", h.body.get("prompt", "")), h.body.get("add_special", h.body.get("add_special_tokens"))
    h.json({"tokens": ([2] if special else []) + [10 + i for i, _ in enumerate(text.split())]})


# --- JSON answers (the model list, the tokenize route) -------------------------------------------------


@pytest.mark.parametrize("route, match", [
    (lambda h: h.json({"models": [{"name": "x"}]}), "answered with an object with keys 'models', not a model list"),
    (lambda h: h.json(["gemma"]), "answered with a list, not a model list"),
    (lambda h: h.raw(PAGE, "text/html"), "answered with a web page ('502 Bad Gateway'), not JSON"),
    (lambda h: h.raw(PAGE, "text/html", status=500), "HTTP 500: a web page ('502 Bad Gateway')"),
    (lambda h: h.raw(b"\x00\xff garbage", "application/json"), "answered with something that is not JSON"),
    (lambda h: h.raw(b"[" * 100_000 + b"]" * 100_000), "not JSON"),  # nested past what the parser takes
    (lambda h: h.raw(b'{"data": [', length=10_000), "broke off its answer: the server closed the connection"),
    (lambda h: h.json({"detail": "Not Found"}, 404), "does not exist (HTTP 404)"),
])
def test_a_model_list_of_the_wrong_shape_is_one_line(server, route, match):
    server.routes["/v1/models"] = route
    _fails(server, lambda: _engine(server.url), match)
    server.reset()
    assert _engine(server.url).model == "gemma-3-270m"


def test_ids_and_context_of_the_wrong_type_are_skipped(server):
    server.routes["/v1/models"] = lambda h: h.json({"data": [{"id": 7}, "x", {"id": "real", "max_model_len": "8k"}]})
    engine = _engine(server.url)
    assert engine.model == "real" and engine.context_len == 4096


def test_a_json_answer_over_the_limit_is_refused_without_being_held(server):
    pad = b"x" * MB  # 50 MB of JSON sent a megabyte at a time (the same bytes: the sender holds 1 MB)
    server.routes["/v1/models"] = lambda h: h.chunked([b'{"data": [{"id": "m", "pad": "'] + [pad] * 50 + [b'"}]}'],
                                                      content_type="application/json")
    tracemalloc.start()
    try:
        message = _fails(server, lambda: _engine(server.url), f"more than the {JSON_LIMIT // MB} MB")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * JSON_LIMIT, f"held {peak / MB:.0f} MB to refuse it"
    server.routes["/v1/models"] = lambda h: h.raw(b"{}", length=50 * MB)  # declared up front: not read at all
    assert "50 MB" in _fails(server, lambda: _engine(server.url), "refused")
    assert "refused" in message


def test_a_server_that_never_answers_times_out(server):
    server.routes["/v1/models"] = lambda h: time.sleep(2)
    started = time.monotonic()
    _fails(server, lambda: _engine(server.url, read_timeout=0.5), "did not answer within 0.5 s")
    assert time.monotonic() - started < 1.8


@pytest.mark.parametrize("answer, match", [
    ({"ids": [1, 2]}, "answered with an object with keys 'ids', not a list of token ids in 'tokens'"),
    ({"tokens": "2 3"}, "not a list of token ids"),
    ({"tokens": [2, "x"]}, "a token list holding a string"),
    ({"tokens": [2, -1]}, "not token ids"),
])
def test_a_tokenize_route_of_another_shape_is_one_line(server, answer, match):
    """/tokenize answering another shape was a KeyError: 'tokens' in a %%codegemma --chat cell."""
    server.routes["/tokenize"] = lambda h: h.json(answer)
    engine = _engine(server.url)
    _fails(server, lambda: engine.count_tokens("def f(): pass"), match)
    _fails(server, lambda: engine.tokenize("x"), match)
    server.routes["/tokenize"] = _tokens
    assert engine.tokenize("a b c") == [2, 10, 11, 12]  # the next request is fine


def test_detokenize_of_another_shape_is_one_line(server):
    server.routes["/tokenize"] = _tokens
    server.routes["/detokenize"] = lambda h: h.json({"content": 3})
    engine = _engine(server.url)
    _fails(server, lambda: engine.tokenizer.decode([10]), "answered with an object with keys 'content', not a text in")


# --- streams ------------------------------------------------------------------------------------------


def _choice(**fields):
    return {"choices": [{"index": 0, "finish_reason": None, **fields}]}


@pytest.mark.parametrize("route, match", [
    (lambda h: h.sse([{"choices": {"text": "a"}}]), "'choices' is an object with keys 'text', not a list"),
    (lambda h: h.sse([{"choices": ["a"]}]), "first choice is a string, not an object"),
    (lambda h: h.sse([_choice(text=42)]), "'text' is a number, not a string"),
    (lambda h: h.sse([_choice(text="a", finish_reason=1)]), "finish_reason that is a number"),
    (lambda h: h.sse(["[1, 2]"]), "not a JSON object but a list"),
    (lambda h: h.sse(["{\"choices\": [{\"te"]), "sent an event that is not JSON"),
    (lambda h: h.chunked([b"\x89PNG\r\n\x1a\n\x00\x00garbage\xff\xfe"]), "closed the stream before it was finished"),
    (lambda h: h.chunked(["hello\n", "world\n"]), "lines that are not server-sent events: 'hello'"),
    (lambda h: h.sse([_choice(text="a")], done=False), "closed the stream before it was finished"),
    (lambda h: h.sse([_choice(text="a"), None]), "closed the stream|broke in the middle"),
    (lambda h: h.sse([{"object": "ping"}]), "ended its stream without an answer"),
    (lambda h: h.json({"choices": [{"text": "whole"}]}), "one JSON reply (an object with keys 'choices'), not the "
                                                          "event stream"),
    (lambda h: h.json({"error": {"message": "model is loading"}}), "reported an error: model is loading"),
    (lambda h: h.raw(PAGE, "text/html"), "answered with a web page ('502 Bad Gateway'), not an event stream"),
    (lambda h: h.chunked([PAGE], content_type=""), "web page"),
    (lambda h: h.raw(PAGE, "text/html", status=500), "refused the request: HTTP 500: a web page"),
    (lambda h: h.chunked(["error: {\"message\": \"slot unavailable\"}\n\n"]), "mid-stream: slot unavailable"),
    (lambda h: h.chunked(["data: " + "x" * (3 * MB)]), "an event longer than 1 MB"),
])
def test_a_malformed_stream_is_one_line_and_the_next_request_works(server, route, match):
    engine = _engine(server.url)
    server.routes["/v1/completions"] = route
    message = _fails(server, lambda: engine.generate("x", max_new_tokens=4).wait(), "")
    assert any(m in message for m in match.split("|")), message
    _fails(server, lambda: engine.complete("x = ", "", mode="line").wait(), "")
    server.reset()
    assert engine.generate("x", max_new_tokens=4).wait().text == "ok"


def test_a_50_mb_stream_line_is_refused_as_it_arrives(server):
    engine = _engine(server.url)
    chunk = b"x" * MB
    server.routes["/v1/completions"] = lambda h: h.chunked([b"data: "] + [chunk] * 50)
    tracemalloc.start()
    try:
        _fails(server, lambda: engine.generate("x").wait(), "longer than 1 MB: refused")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * MB, f"held {peak / MB:.0f} MB"


def test_usage_of_the_wrong_type_is_ignored(server):
    engine = _engine(server.url)
    server.routes["/v1/completions"] = lambda h: h.sse(completion_events("abcdefgh") + [
        {"choices": [], "usage": {"prompt_tokens": "12", "completion_tokens": None}}])
    result = engine.generate("x", max_new_tokens=4).wait()
    assert result.text == "abcdefgh" and result.stats.prompt_tokens == 0 and result.stats.new_tokens == 2
    server.routes["/v1/completions"] = lambda h: h.sse(completion_events("ab") + [
        {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}}])
    result = engine.generate("x", max_new_tokens=4).wait()
    assert (result.stats.prompt_tokens, result.stats.new_tokens) == (12, 3)


def test_a_server_that_stops_mid_answer_or_goes_silent(server):
    engine = RemoteEngine.load(RemoteOptions(url=server.url, read_timeout=0.5, retries=0))
    server.routes["/v1/completions"] = lambda h: h.sse([_choice(text="a"), _choice(text="b")], delay=1.5)
    _fails(server, lambda: engine.generate("x").wait(), "sent nothing for 0.5 s in the middle of an answer")
    server.routes["/v1/completions"] = lambda h: time.sleep(1.5)
    _fails(server, lambda: engine.generate("x").wait(), "did not answer within 0.5 s")


# --- chats: the server's chat route -----------------------------------------------------------------


def test_an_instruction_model_chats_through_the_chat_route(server):
    server.model = "codegemma-7b-it"
    server.reset()
    server.answer = "Use sorted(words, key=len)."
    engine = _engine(server.url)
    assert engine.instruction
    turns = [Turn("user", "first question"), Turn("model", "first answer"), Turn("user", "sort words?")]
    generation = engine.chat(turns, system="Be brief.", max_new_tokens=20)
    assert "".join(generation) == server.answer and generation.result.stats.finish_reason == "stop"
    request = server.requests[-1]
    assert request["path"] == "/v1/chat/completions" and request["body"]["stream"] is True
    assert request["body"]["messages"] == [  # Gemma has no system role: it opens the first user message
        {"role": "user", "content": "Be brief.\n\nfirst question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "sort words?"}]
    assert request["body"]["max_tokens"] == 20 and request["body"]["model"] == "codegemma-7b-it"
    assert engine.last_prompt.startswith("<start_of_turn>user\nBe brief.\n\nfirst question<end_of_turn>\n")
    assert not any(r["path"].endswith("tokenize") for r in server.requests)  # no tokenizer needed
    # Too long for the context: the oldest exchange goes first, then the start of the first message.
    small = RemoteEngine.load(RemoteOptions(url=server.url, context_len=64))
    long = [Turn("user", "old " * 40), Turn("model", "old answer"), Turn("user", "q" * 200)]
    small.chat(long, max_new_tokens=8).wait()
    [message] = server.requests[-1]["body"]["messages"]
    assert message["role"] == "user" and set(message["content"]) == {"q"} and len(message["content"]) < 200


@pytest.mark.parametrize("route, match", [
    (lambda h: h.sse([{"choices": [{"delta": "text"}]}]), "'delta' is a string, not an object"),
    (lambda h: h.sse([{"choices": [{"delta": {"content": ["a"]}}]}]), "'content' is a list, not a string"),
    (lambda h: h.json({"detail": "Not Found"}, 404), "refused the request: HTTP 404: Not Found"),
])
def test_a_malformed_chat_stream_is_one_line(server, route, match):
    server.model = "gemma-3-1b-it"
    server.reset()
    engine = _engine(server.url)
    server.routes["/v1/chat/completions"] = route
    _fails(server, lambda: engine.chat([Turn("user", "hi")]).wait(), match)
    server.reset()
    assert engine.chat([Turn("user", "hi")]).wait().text == "ok"


def test_a_prompt_the_chat_route_refuses_is_a_prompt_error(server):
    server.model = "gemma-3-1b-it"
    server.reset()
    engine = _engine(server.url)
    server.routes["/v1/chat/completions"] = lambda h: h.json({"error": {"message": "context exceeded"}}, 400)
    with pytest.raises(PromptError, match="context exceeded"):
        engine.chat([Turn("user", "hi")]).wait()


def test_without_a_tokenize_route_counts_are_estimated_and_remembered(server):
    engine = _engine(server.url)
    assert engine.count_tokens("x" * 30) == 30 // CHARS_PER_TOKEN
    assert engine.count_tokens("x" * 31) == 31 // CHARS_PER_TOKEN + 1
    probes = [r for r in server.requests if r["path"].endswith("tokenize")]
    assert {r["path"] for r in probes} == {"/extras/tokenize", "/tokenize"}
    engine.count_tokens("more text")
    assert len([r for r in server.requests if r["path"].endswith("tokenize")]) == len(probes)  # asked once
    with pytest.raises(CodeGemmaError, match="has no tokenize route"):
        engine.tokenize("x")
    count = token_counter(engine)
    assert count("abcdef") == 2


@pytest.mark.parametrize("status", [404, 405, 501])
def test_a_missing_tokenize_route_is_any_of_404_405_501(server, status):
    server.routes["/tokenize"] = server.routes["/extras/tokenize"] = lambda h: h.json({"detail": "no"}, status)
    engine = _engine(server.url)
    assert engine.count_tokens("abc") == 1


def test_llama_cpp_tokenize_route_given_vllm_fields_is_not_taken_for_vllm(server):
    """llama.cpp's /tokenize answers {"tokens": []} to a body without "content": not an answer."""
    server.routes["/tokenize"] = lambda h: h.json({"tokens": [7] * len(h.body["content"]) if "content" in h.body
                                                   else []})
    engine = _engine(server.url)
    assert engine.count_tokens("abcd") == 4 and server.requests[-1]["body"]["parse_special"] is True


# --- through a real kernel ------------------------------------------------------------------------------


def _kernel(server, **env):
    from jupyter_codegemma.cli.kernel_client import KernelSession

    environment = {**os.environ, "CODEGEMMA_SERVER_URL": server.url, **env}
    environment.pop("CODEGEMMA_SERVER_MODEL", None)
    return KernelSession(extensions=["jupyter_codegemma"], env=environment)


def _dump(messages) -> str:
    return json.dumps(messages, default=str)


def _failures(outputs) -> list:
    """Error outputs and anything written to stderr."""
    return [m for m in outputs if m["msg_type"] == "error" or m["content"].get("name") == "stderr"]


def _only_line(outputs) -> str:
    """The one line a failed cell prints: `codegemma: ...`, and no traceback anywhere."""
    assert "Traceback" not in _dump(outputs) and not _failures(outputs), outputs
    lines = stream_text(outputs).splitlines()
    assert len(lines) == 1 and lines[0].startswith("codegemma: "), lines
    shown = {}  # what each display shows at the end: nothing left saying "waiting for the model"
    for m in outputs:
        if "display_data" in m["msg_type"]:
            shown[m["content"].get("transient", {}).get("display_id")] = m["content"]["data"].get("text/plain", "")
    assert not any(text.strip() for text in shown.values()), shown
    return lines[0]


@pytest.mark.slow
def test_a_kernel_says_what_a_malformed_server_did_in_one_line(server):
    server.routes["/v1/models"] = lambda h: h.json({"data": [{"id": "codegemma-7b-it"}, {"id": "gemma-3-270m"}]})
    with _kernel(server) as ks:
        comm_id = ks.open_comm()
        assert ks.complete(comm_id, "x = ", mode="line", timeout=120)[-1]["type"] == "done"  # connected
        # An instruction model: %%codegemma --chat and explain go to the chat route, which answers wrongly.
        server.routes["/v1/chat/completions"] = lambda h: h.sse([{"choices": {"delta": {"content": "a"}}}])
        reply, outputs = ks.execute("%%codegemma --chat\nhow do I sort a list of words by length?", timeout=60)
        line = _only_line(outputs)
        assert reply["status"] == "ok" and "'choices' is an object" in line and server.url in line, line
        assert ks.execute("1 / 0")[0]["status"] == "error"
        server.routes["/v1/chat/completions"] = lambda h: h.raw(PAGE, "text/html", status=500)
        line = _only_line(ks.execute("%codegemma explain", timeout=60)[1])
        assert "HTTP 500: a web page ('502 Bad Gateway')" in line, line
        # A base model whose /tokenize answers another shape (this was `KeyError: 'tokens'` and a traceback).
        server.routes["/tokenize"] = lambda h: h.json({"ids": [1, 2, 3]})
        reply, outputs = ks.execute(f"%codegemma use {server.url} --model gemma-3-270m", timeout=60)
        assert "using gemma-3-270m" in _dump(outputs)
        line = _only_line(ks.execute("%%codegemma --chat\nhow do I sort a list?", timeout=60)[1])
        assert "answered with an object with keys 'ids', not a list of token ids" in line, line
        line = _only_line(ks.execute("%codegemma explain", timeout=60)[1])
        assert "/tokenize answered with an object with keys 'ids'" in line, line
        # Over the comm: an `error` reply with the same kind of line.
        server.routes["/v1/completions"] = lambda h: h.sse([{"choices": [{"text": 5}]}])
        error = ks.complete(comm_id, "y = ", mode="line", timeout=60)[-1]
        assert error["type"] == "error" and "'text' is a number, not a string" in error["message"], error
        assert "\n" not in error["message"]
        # The kernel and the next request are unharmed.
        server.reset()
        server.routes["/v1/models"] = lambda h: h.json({"data": [{"id": "codegemma-7b-it"}, {"id": "gemma-3-270m"}]})
        assert ks.complete(comm_id, "z = ", mode="line", timeout=60)[-1]["type"] == "done"
        reply, outputs = ks.execute("%%codegemma --chat\nhow do I sort a list?", timeout=60)
        assert reply["status"] == "ok" and "Traceback" not in _dump(outputs)
        assert any("ok" in m["content"].get("data", {}).get("text/plain", "") for m in outputs
                   if "display_data" in m["msg_type"])


@pytest.mark.slow
def test_chat_explain_and_fix_without_a_tokenize_route(server):
    """A server with no tokenize route (Ollama): an instruction model chats, explains and fixes through the
    chat route, base-model prompts are fitted with estimated counts."""
    server.model = "codegemma-7b-it"
    server.reset()
    server.answer = "Here:\n```python\nprint(total)\n```\nDone."
    with _kernel(server) as ks:
        reply, outputs = ks.execute("%%codegemma --chat --max-new-tokens 16\nhow do I print a total?", timeout=120)
        assert reply["status"] == "ok" and "Traceback" not in _dump(outputs)
        final = [m for m in outputs if m["msg_type"] == "update_display_data"][-1]["content"]["data"]
        assert "print(total)" in final["text/plain"]
        assert ks.execute("total = 3\nprint(totl)")[0]["status"] == "error"
        reply, outputs = ks.execute("%codegemma explain", timeout=60)  # (its context shows the traceback)
        assert reply["status"] == "ok" and not _failures(outputs)
        assert "print(total)" in [m for m in outputs if m["msg_type"] == "update_display_data"][-1]["content"]["data"][
            "text/markdown"]
        reply, outputs = ks.execute("%codegemma fix", timeout=60)
        assert reply["status"] == "ok" and not _failures(outputs)
        shown = _dump(outputs)
        assert "Proposed fix" in shown and "+print(total)" in shown, shown
        chats = [r for r in server.requests if r["path"] == "/v1/chat/completions"]
        assert len(chats) == 3 and all(r["body"]["messages"][-1]["role"] == "user" for r in chats)
        assert "print(totl)" in chats[-1]["body"]["messages"][0]["content"]
        assert not [r for r in server.requests if r["path"] == "/v1/completions" and r["body"]["max_tokens"] > 1]
        reply, outputs = ks.execute("%codegemma debug last-prompt conversation")
        assert "<start_of_turn>user\n" in stream_text(outputs) and "print(totl)" in stream_text(outputs)
