"""Every user mistake in the magics and settings is one line naming the problem, never a traceback (issue 20).

One real kernel with the extension loaded and no model loaded yet: each mistake runs as a cell a user
would type, and its whole output (streams, displays, errors) is read. IPython's own UsageError line is
one line too, and counts. After the mistakes the kernel still answers with the default model: a failed
`use` or `load` left no bad server or path behind.
"""

from __future__ import annotations

import pytest

# (the cell, a phrase its one line must hold)
MISTAKES = [
    # from the issue
    ("%codegemma set temprature=0.3", "did you mean temperature?"),
    ("%codegemma set max_new_tokens=-5", "max_new_tokens takes a whole number of at least 1, not '-5'"),
    ("%exercise --file /nonexistent.yaml", "/nonexistent.yaml: no such file"),
    ("%codegemma load /nonexistent/model.gguf", "/nonexistent/model.gguf"),
    # and more
    ("%codegemma frobnicate", "unknown subcommand 'frobnicate'"),
    ("%codegemma set", "expected `%codegemma set KEY=VALUE`"),
    ("%codegemma set temperature", "expected KEY=VALUE"),
    ("%codegemma set dtype=int4", "dtype takes one of auto, float32, bfloat16, int8"),
    ("%codegemma set completions_enabled=maybe", "completions_enabled takes true or false"),
    ("%codegemma set context_len=10", "context_len takes a whole number of at least 64"),
    ("%codegemma enable everything", "expected 'completions', 'hints', 'generation'"),
    ("%codegemma disable sound", "expected 'completions', 'hints', 'generation'"),
    ("%codegemma use", "expected `%codegemma use URL [--model NAME]`"),
    ("%codegemma use http://127.0.0.1:9 --model", "expected `%codegemma use URL [--model NAME]`"),
    ("%codegemma use not-a-url", "server URL must look like http://host:port"),
    ("%codegemma use http://127.0.0.1:9", "cannot reach the server at http://127.0.0.1:9"),
    ("%codegemma load /etc/hostname", "/etc/hostname"),
    ("%codegemma explain --cell 999", "there is no cell In[999]"),
    ("%codegemma explain --cell x", "invalid int value: 'x'"),
    ("%codegemma explain --bogus", "unrecognized arguments: --bogus"),
    ("%codegemma fix --bogus", "unrecognized arguments: --bogus"),
    ("%codegemma chat insert 5", "no block 5"),
    ("%codegemma chat insert x", "expected a block number, got 'x'"),
    ("%codegemma chat frob", "expected `chat reset`, `chat insert [N]` or `chat history`"),
    ("%codegemma debug", "expected `%codegemma debug last-prompt"),
    ("%codegemma debug last-prompt cell", "expected `%codegemma debug last-prompt"),
    ("%%codegemma\n", "the cell body is empty"),
    ("%%codegemma --fill\nx = 1", "exactly one <FILL> marker in the cell, found 0"),
    ("%%codegemma --fill\nx = <FILL> + <FILL>", "exactly one <FILL> marker in the cell, found 2"),
    ("%%codegemma --max-new-tokens -3\nadd two numbers", "--max-new-tokens takes a whole number of at least 1"),
    ("%%codegemma --max-new-tokens abc\nadd two numbers", "invalid int value: 'abc'"),
    ("%%codegemma --temperature -1\nadd two numbers", "--temperature a number of at least 0"),
    ("%%codegemma --bogus\nadd two numbers", "unrecognized arguments: --bogus"),
    ("%exercise --category nonsense", "invalid choice: 'nonsense'"),
    ("%exercise --difficulty 9", "invalid choice: 9"),
    ("%exercise --file 'unclosed", "no closing quotation"),
    ("%%exercise --seed abc\nx = 1", "invalid int value: 'abc'"),
    ("%%exercise\n", "the cell body is empty"),
    ("%%exercise\nfor i in range(3)\n    print(i)", "the code must parse before an error is injected"),
    ("%config CodeGemma.temperature = -1", "should not be less than 0.0"),
]


def _lines(outputs) -> list[str]:
    text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    text += "".join(m["content"].get("data", {}).get("text/plain", "") for m in outputs
                    if m["msg_type"] in ("display_data", "update_display_data"))
    return [line for line in text.splitlines() if line.strip() and not line.startswith("codegemma: waiting")]


@pytest.fixture(scope="module")
def session(ks):
    return ks


@pytest.mark.parametrize("cell, phrase", MISTAKES, ids=[m[0].split("\n")[0][:48] for m in MISTAKES])
def test_a_mistake_is_one_line(session, cell, phrase):
    reply, outputs = session.execute(cell, timeout=120)
    tracebacks = [m for m in outputs if m["msg_type"] == "error" and len(m["content"].get("traceback", [])) > 1]
    assert not tracebacks, "\n".join(tracebacks[0]["content"]["traceback"])
    lines = _lines(outputs) + [m["content"]["evalue"] for m in outputs if m["msg_type"] == "error"]
    assert not any("Traceback" in line for line in lines), lines
    assert len(lines) == 1 and phrase in lines[0], lines


@pytest.mark.slow
def test_after_the_mistakes_the_kernel_still_answers(session):
    reply, outputs = session.execute("%%codegemma --max-new-tokens 6 --no-insert\nadd two numbers", timeout=300)
    said = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    assert reply["status"] == "ok" and "tokens" in said and "Traceback" not in said, said
