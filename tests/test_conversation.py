"""`%codegemma explain | fix | chat` in a real kernel (the prompt read back through `%codegemma debug
last-prompt`, never a mock of the engine), and the context, limits and prompts on their own."""

from __future__ import annotations

import ast
import sys
import time

import pytest

from jupyter_codegemma.kernel.conversation import fixes, limits
from jupyter_codegemma.kernel.conversation import prompts as cv
from conftest import next_input_payloads, stream_text


_payload, _text = next_input_payloads, stream_text


def _errors(outputs):
    return [m for m in outputs if m["msg_type"] == "error"]


def _final(outputs):
    updates = [m for m in outputs if m["msg_type"] == "update_display_data"]
    return updates[-1]["content"] if updates else None


def _last_prompt(ks) -> str:
    reply, outputs = ks.execute("%codegemma debug last-prompt conversation")
    assert reply["status"] == "ok"
    return _text(outputs)


# --- in a real kernel (ordered: the first test needs a kernel that has raised nothing) ----------------


def test_explain_with_no_exception_is_a_message(ks):
    for line in ("%codegemma explain", "%codegemma fix --insert"):
        reply, outputs = ks.execute(line)
        assert reply["status"] == "ok" and not _errors(outputs) and not _payload(reply)
        assert "no exception to" in _text(outputs)
    reply, outputs = ks.execute("%codegemma explain --cell 999")
    assert reply["status"] == "ok" and "no cell In[999]" in _text(outputs)
    reply, outputs = ks.execute("%codegemma explain --bogus")
    assert reply["status"] == "error" and "unrecognized arguments" in reply["evalue"]  # a UsageError line


@pytest.mark.slow
def test_explain_streams_and_the_prompt_holds_traceback_source_and_values(ks):
    reply, _ = ks.execute("numerator = 41\ndenominator = numerator - 41\nratio = numerator / denominator")
    assert reply["status"] == "error" and reply["ename"] == "ZeroDivisionError"
    started = time.monotonic()
    reply, outputs = ks.execute("%codegemma explain --max-new-tokens 24", timeout=120)
    elapsed = time.monotonic() - started
    assert reply["status"] == "ok" and not _errors(outputs)
    kinds = [m["msg_type"] for m in outputs]
    assert "display_data" in kinds and kinds.count("update_display_data") >= 2  # streamed, then the final view
    final = _final(outputs)["data"]
    assert "Context sent to the model" in final["text/markdown"]
    assert "instruction-tuned model (CodeGemma 7B-IT" in final["text/markdown"]  # the default is a base model
    prompt = _last_prompt(ks)
    assert "Traceback (most recent call last)" in prompt and "ZeroDivisionError: division by zero" in prompt
    assert "ratio = numerator / denominator" in prompt and "denominator = numerator - 41" in prompt
    assert "numerator = 41" in prompt and "denominator = 0" in prompt and "ratio: not" not in prompt  # the values of the names involved
    assert "interactiveshell.py" not in prompt  # IPython's own frames are left out
    print(f"\n[figures] %codegemma explain (24 new tokens, default model): {elapsed:.1f} s; {_text(outputs).strip()}")


@pytest.mark.slow
def test_fix_insert_after_name_error_parses_or_says_no_confident_fix_and_runs_nothing(ks):
    ks.execute("side_effects = []")
    reply, _ = ks.execute("side_effects.append(1)\ntotal = sum(side_effects)\nprint(totl)")
    assert reply["status"] == "error" and reply["ename"] == "NameError"
    reply, outputs = ks.execute("%codegemma fix --insert --max-new-tokens 40", timeout=120)
    assert reply["status"] == "ok" and not _errors(outputs)
    payloads = _payload(reply)
    final = _final(outputs)["data"]["text/markdown"]
    if payloads:
        [payload] = payloads
        ast.parse(payload["text"])
        assert payload["replace"] is False and "inserted below" in _text(outputs)
        assert "Proposed fix for" in final and "<pre><code>" in final  # the diff, as safe_markdown.diff_block
    else:
        assert "No confident fix" in final
    prompt = _last_prompt(ks)
    assert "NameError: name 'totl' is not defined" in prompt and "print(totl)" in prompt
    assert "totl: not defined" in prompt
    reply, outputs = ks.execute("print(side_effects, 'totl' in globals())")
    assert _text(outputs).strip() == "[1] False"  # the failing cell ran once; the fix was never run
    print(f"\n[figures] %codegemma fix: {'inserted ' + repr(payloads[0]['text']) if payloads else 'no confident fix'}")


@pytest.mark.slow
def test_fix_of_a_syntax_error_uses_the_checker(ks):
    reply, _ = ks.execute("def area(w, h:\n    return w * h")
    assert reply["status"] == "error" and reply["ename"] == "SyntaxError"
    reply, outputs = ks.execute("%codegemma fix --max-new-tokens 24", timeout=120)
    assert reply["status"] == "ok" and not _errors(outputs) and not _payload(reply)
    prompt = _last_prompt(ks)
    assert "Syntax error at line 1, column" in prompt and "def area(w, h:" in prompt
    from jupyter_codegemma.exercises.checker import check_code

    found = check_code("def area(w, h:\n    return w * h")
    assert f": {found.category}: " in prompt  # the checker's category, not only Python's message


@pytest.mark.slow
def test_explain_a_cell_body_and_redact_secrets(ks):
    reply, outputs = ks.execute("%%codegemma --explain --max-new-tokens 8\nsquares = [i * i for i in range(5)]")
    assert reply["status"] == "ok" and not _errors(outputs) and not _payload(reply)
    assert "squares = [i * i for i in range(5)]" in _last_prompt(ks)
    reply, _ = ks.execute('api_key = "sk-abcdefghijklmnopqrstuvwxyz123456"\nkeys = [api_key]\nkeys[3]')
    assert reply["ename"] == "IndexError"
    ks.execute("%codegemma explain --max-new-tokens 4", timeout=120)
    prompt = _last_prompt(ks)
    assert "keys[3]" in prompt and "IndexError" in prompt
    assert "abcdefghijklmnop" not in prompt and "<redacted>" in prompt


@pytest.mark.slow
def test_chat_keeps_three_turns_in_the_prompt_and_reset_clears_them(ks):
    ks.execute("%codegemma chat reset")
    questions = ["What is a Python list comprehension?", "Show one that squares numbers.",
                 "And one that keeps only even numbers?"]
    for question in questions:
        reply, outputs = ks.execute(f"%%codegemma --chat --max-new-tokens 12\n{question}", timeout=120)
        assert reply["status"] == "ok" and not _errors(outputs)
    prompt = _last_prompt(ks)
    assert all(q in prompt for q in questions)
    assert prompt.count("User:") == 3 and prompt.count("Assistant:") == 3  # two answers, and the open turn
    tokens = int(prompt.split("the last conversation prompt: ")[1].split(" tokens")[0])
    assert tokens + 12 <= 4096  # within the engine's context (CodeGemma.context_len)
    reply, outputs = ks.execute("%codegemma chat history")
    assert _text(outputs).count("--- user") == 3
    reply, outputs = ks.execute("%codegemma chat reset")
    assert "3 exchanges" in _text(outputs)
    ks.execute("%%codegemma --chat --max-new-tokens 4\nHello again.", timeout=120)
    prompt = _last_prompt(ks)
    assert "Hello again." in prompt and not any(q in prompt for q in questions)
    reply, outputs = ks.execute("%codegemma chat insert 7")
    assert "no block 7" in _text(outputs) and not _payload(reply)


def test_chat_insert_puts_a_code_block_in_the_next_cell_unrun(ks):
    code = "inserted_marker = 1"
    reply, _ = ks.execute(
        "c = [c for c in get_ipython().magics_manager.registry.values() if hasattr(c, 'conversation')][0]\n"
        f"c.conversation.history.add('q', 'Here:\\n```python\\n{code}\\n```\\n')\n"
        "%codegemma chat insert 1")
    [payload] = _payload(reply)
    assert payload["text"] == code + "\n"
    reply, outputs = ks.execute("print('inserted_marker' in globals())")
    assert _text(outputs).strip() == "False"


# --- the parts on their own ------------------------------------------------------------------------


def test_truncate_and_excerpt():
    assert limits.truncate("short", 10) == "short"
    cut = limits.truncate("a" * 50 + "b" * 50, 20)
    assert cut.startswith("a" * 10) and cut.endswith("b" * 10) and "80 characters cut" in cut
    assert limits.truncate("x" * 100, 10, keep="tail").endswith("x" * 10)
    assert limits.truncate("x" * 100, 10, keep="head").startswith("x" * 10)
    source = "\n".join(f"line_{i} = {i}" for i in range(200))
    part = limits.excerpt(source, 120, line=150)
    assert "line_150 = 150" in part and "lines above cut" in part and "lines below cut" in part
    assert len(part) < 220


def test_redact_hides_credentials_and_keeps_code():
    text = ('password = "hunter2"\nclient(api_key=\'AIza' + "x" * 35 + "')\n"
            'key = "sk-' + "a" * 30 + '"\nheaders = {"token": "abc123"}\nx = 1')
    out = limits.redact(text)
    assert "hunter2" not in out and "abc123" not in out and "a" * 30 not in out and "x" * 35 not in out
    assert 'password = "<redacted>"' in out and "x = 1" in out
    assert limits.redact("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----") == "<redacted>"
    assert limits.is_secret_name("DB_PASSWORD") and not limits.is_secret_name("total")


def test_values_of_the_names_involved_are_cut_and_redacted():
    def failing():
        secret_token = "s3cr3t"  # noqa: F841
        data = list(range(1000))
        return data[secret_token.count("x") + 2000]

    try:
        failing()
    except IndexError as e:
        error = e
    values = cv.involved_values(error, {}, limits.Budget(value=60))
    text = "\n".join(values)
    assert "data = list of length 1000" in text and "(in failing)" in text and len(values[0]) < 120
    assert "secret_token = <redacted>" in text and "s3cr3t" not in text
    tb = cv.format_traceback(error, {}, 4000)
    assert tb.startswith("Traceback (most recent call last)") and "IndexError" in tb
    assert cv.names_in("total = sum(x.values) + len(y)") == ["total", "sum", "x", "len", "y"]


def test_last_failure_falls_back_to_sys_last_value():
    class Shell:
        class compile:
            _filename_map = {__file__: 7}

        class history_manager:
            input_hist_raw = [""] * 7 + ["the cell"]

    try:
        1 / 0
    except ZeroDivisionError as e:
        sys.last_value = e
    try:
        failure = cv.last_failure(Shell())
        assert failure.number == 7 and failure.source == "the cell" and failure.label == "In[7]"
    finally:
        del sys.last_value
        if hasattr(sys, "last_exc"):
            del sys.last_exc


def test_fit_prompt_shrinks_the_context_until_it_fits():
    def make(budget):
        return cv.Context(source=limits.truncate("x" * 10_000, budget.source), label="In[1]",
                          traceback=limits.truncate("t" * 10_000, budget.traceback, keep="tail"))

    contexts = limits.contexts_at_scales(make)
    prompt, tokens, index = limits.fit_prompt(contexts, lambda c: cv.base_explain_prompt(c, True), len, 2000)
    assert tokens <= 2000 and index == 2 and "In[1]" in prompt  # a quarter of the budget
    assert limits.Budget().scaled(0.5).source == 1500


def test_chat_history_drops_the_oldest_exchanges_to_fit():
    history = cv.ChatHistory()
    for i in range(5):
        history.add(f"question {i}", f"answer {i} " + "z" * 100)
    turns = history.prompt_turns("new question", lambda turns: len(cv.base_chat_prompt(turns)) < 500)
    assert turns[-1].text == "new question" and turns[0].role == "user"
    assert history.dropped > 0 and turns[0].text != "question 0"
    prompt = cv.base_chat_prompt(turns)
    assert prompt.endswith("Assistant:") and "User: new question" in prompt
    assert history.reset() == 5 and history.turns == []


def test_code_blocks_fix_judgement_and_diff():
    answer = "Try:\n```python\nx = [i for i in y]\n```\nor\n```\nprint(x)\n```\nand\n```python\nopen("
    assert cv.code_blocks(answer) == ["x = [i for i in y]", "print(x)", "open("]
    assert fixes.judge_fix("print(totl)", "print(totl)") == "the model proposed the same code unchanged"
    assert fixes.judge_fix("print(totl)", "print(total") == "the model's proposal is not valid Python"
    assert fixes.judge_fix("print(totl)", "") == "the model proposed no code"
    assert fixes.judge_fix("print(totl)", "print(total)") is None
    assert fixes.judge_fix("x", "%time print(1)") is not None  # magics need IPython's transform to parse
    change = fixes.diff("a = 1\nprint(totl)\n", "a = 1\nprint(a)\n", "In[3]")
    assert "-print(totl)" in change and "+print(a)" in change and "In[3] (proposed fix)" in change


def test_prompts_for_base_and_instruction_models():
    context = cv.Context(source="1/0", label="In[2]", traceback="ZeroDivisionError: division by zero",
                         values=["x = 1"])
    base = cv.base_explain_prompt(context, True)
    assert "Cell In[2]:\n```python\n1/0\n```" in base and base.endswith("how to fix it:\n")
    assert cv.base_fix_prompt(context).endswith("The corrected cell:\n```python\n")
    assert "Values of the names involved" in cv.explain_request(context, True)
    assert "one\n```python code block" not in cv.fix_request(context) and "```python code block" in cv.fix_request(context)
    assert cv.trim_base_answer("It fails.\n\n\nBelow is a cell", "explain") == ("It fails.", True)
    assert cv.trim_base_answer("Use a list.\nUser: more", "chat") == ("Use a list.", True)
    assert "2 values" in cv.Context(source="a", values=["a", "b"]).summary()


@pytest.mark.slow
def test_instruction_model_prompts_use_the_chat_template(engine):
    """The instruction-model path, with the default model's tokenizer (it has the turn pieces)."""
    from jupyter_codegemma.backends.base import token_counter
    from jupyter_codegemma.backends.chat import Turn, chat_prompt
    from jupyter_codegemma.kernel.conversation.commands import Conversation

    talk = Conversation.__new__(Conversation)
    talk.history = cv.ChatHistory()
    talk.history.add("first question", "first answer")
    build, count, context_text, summary = talk._builders(token_counter(engine), "chat", False, True, limit=1000)
    turns = build("second question")  # the turns: engine.chat applies the template
    assert [turn.role for turn in turns] == ["user", "model", "user"]
    ids = chat_prompt(engine.tokenizer, turns, system=cv.SYSTEM)  # what the local engine's chat runs
    text = limits.render_prompt(engine.tokenizer, ids)
    assert text.startswith("<bos><start_of_turn>user\n" + cv.SYSTEM + "\n\nfirst question<end_of_turn>\n")
    assert text.endswith("<start_of_turn>user\nsecond question<end_of_turn>\n<start_of_turn>model\n")
    assert abs(count(turns) - len(ids)) <= len(turns), (count(turns), len(ids))  # counted without building ids
    assert "1 earlier exchanges" in summary("second question")
    build, *_ = talk._builders(token_counter(engine), "fix", True, True, limit=1000)
    [turn] = build(cv.Context(source="print(totl)", label="In[3]"))
    assert "reply with the whole corrected cell" in turn.text and "Cell In[3]:\n```python\nprint(totl)\n```" in turn.text
    assert Conversation._shape("Here:\n```python\nprint(total)\n```\nDone.", "fix", True) == ("print(total)", False)
    assert Turn  # the template's turns are runtime.chat.Turn


def test_last_prompt_is_kept_per_kind(ks):
    ks.execute("%%codegemma --max-new-tokens 4 --no-insert\nsquare each number in a list", timeout=120)
    ks.execute("%%codegemma --explain --max-new-tokens 4\nxs = [1, 2]", timeout=120)
    magic = _text(ks.execute("%codegemma debug last-prompt magic")[1])
    assert magic.startswith("--- the last magic prompt") and "square each number" in magic
    assert "xs = [1, 2]" not in magic
    both = _text(ks.execute("%codegemma debug last-prompt")[1])
    assert "--- the last magic prompt" in both and "--- the last conversation prompt" in both
    assert "xs = [1, 2]" in both
    wrong = _text(ks.execute("%codegemma debug last-prompt cell")[1])
    assert wrong.strip().startswith("codegemma: expected `%codegemma debug last-prompt [")


def test_a_fix_must_change_the_failing_line_and_the_undefined_name():
    cell = "prices_list = [3, 4]\nn = len(price_list)\nprint(n)"
    error = NameError("name 'price_list' is not defined")
    added_a_line = "prices_list = [3, 4]\nprice_list = []\nn = len(price_list)\nprint(n)"
    assert "leaves line 2 (`n = len(price_list)`)" in fixes.judge_fix(cell, added_a_line, error=error, line=2)
    still_undefined = "prices_list = [3, 4]\nn = len(price_list) + 0\nprint(n)"
    assert fixes.judge_fix(cell, still_undefined, error=error, line=2) == \
        "the proposal still uses the undefined name `price_list`"
    renamed = "prices_list = [3, 4]\nn = len(prices_list)\nprint(n)"
    assert fixes.judge_fix(cell, renamed, error=error, line=2) is None
    # a syntax error's line is not required to change (an unclosed bracket is fixed on an earlier line)
    assert fixes.judge_fix("x = (1,\ny = 2", "x = (1,)\ny = 2", error=SyntaxError("never closed"), line=None) is None


def test_the_failing_line_is_read_from_the_traceback_in_a_kernel(ks):
    ks.execute("prices_list = [3, 4]\nn = len(price_list)\nprint(n)")
    probe = ("from jupyter_codegemma.kernel import extension\n"
             "from jupyter_codegemma.kernel.conversation import fixes\n"
             "c = extension._loaded['magics'].conversation\n"
             "print(fixes.failing_line(c.recorder.last, c._cell_files()), fixes.undefined_name(c.recorder.last.error))")
    assert _text(ks.execute(probe)[1]).split() == ["2", "price_list"]
