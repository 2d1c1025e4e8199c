"""%%codegemma and %codegemma in a real kernel; the prompt helpers on their own."""

from __future__ import annotations

import time

import pytest

from jupyter_codegemma.backends.base import is_instruction_model
from jupyter_codegemma.kernel import prompts as prompting
from conftest import next_input_payloads, stream_text


_payload, _text = next_input_payloads, stream_text


@pytest.mark.slow
def test_codegemma_streams_shows_and_inserts_a_cell(ks):
    reply, outputs = ks.execute("%%codegemma --max-new-tokens 24\nsort a list of words by length", timeout=120)
    assert reply["status"] == "ok"
    [payload] = _payload(reply)
    assert payload["text"].strip() and payload["replace"] is False
    kinds = [m["msg_type"] for m in outputs]
    assert "display_data" in kinds and kinds.count("update_display_data") >= 2  # streamed, then the final view
    final = [m for m in outputs if m["msg_type"] == "update_display_data"][-1]["content"]["data"]
    assert final["text/markdown"].startswith("```python\n") and final["text/plain"] == payload["text"]
    assert "tokens" in _text(outputs)


@pytest.mark.slow
def test_no_insert_and_replace(ks):
    reply, _ = ks.execute("%%codegemma --no-insert --max-new-tokens 8\nprint hello", timeout=120)
    assert reply["status"] == "ok" and not _payload(reply)
    reply, _ = ks.execute("%%codegemma --replace --max-new-tokens 8\nprint hello", timeout=120)
    assert _payload(reply)[0]["replace"] is True


@pytest.mark.slow
def test_fill_fills_the_marker(ks):
    cell = "%%codegemma --fill --max-new-tokens 16\ndef add(a, b):\n    return <FILL>\n\nprint(add(1, 2))\n"
    reply, outputs = ks.execute(cell, timeout=120)
    [payload] = _payload(reply)
    assert payload["text"].startswith("def add(a, b):\n    return ")
    assert payload["text"].endswith("\n\nprint(add(1, 2))\n")
    assert "<FILL>" not in payload["text"]
    reply, outputs = ks.execute("%%codegemma --fill\nno marker here")
    assert "exactly one <FILL>" in _text(outputs) and not _payload(reply)


@pytest.mark.slow
def test_generated_code_is_never_run(ks):
    ks.execute("%%codegemma --max-new-tokens 16\nset the variable executed_marker to 1\nexecuted_marker = 1")
    reply, outputs = ks.execute("print('executed_marker' in globals())")
    assert _text(outputs).strip() == "False"


@pytest.mark.slow
def test_interrupt_cancels_generation_and_the_next_request_works(ks):
    msg_id = ks.execute_async("%%codegemma --max-new-tokens 400 --no-insert\nwrite a long list of prime numbers")
    ks._wait(lambda: sum(m["msg_type"] == "update_display_data" for m in ks.outputs(msg_id)) >= 3, 60,
             "streamed output")
    interrupted = time.monotonic()
    ks.interrupt()
    reply = ks.wait_execute(msg_id, timeout=30)
    stopped = time.monotonic() - interrupted
    assert "cancelled" in _text(ks.outputs(msg_id)), _text(ks.outputs(msg_id))
    assert stopped < 5, stopped
    reply, outputs = ks.execute("%%codegemma --max-new-tokens 8\nprint hello", timeout=60)
    assert reply["status"] == "ok" and _payload(reply)
    print(f"\n[figures] %%codegemma stopped {stopped * 1e3:.0f} ms after the interrupt")


def test_settings_through_config_and_set(ks):
    reply, outputs = ks.execute("%config CodeGemma.temperature = 0.2\n%codegemma set max_new_tokens=5 context_cells=1\n"
                                "ip = get_ipython()\n"
                                "cg = [c for c in ip.configurables if type(c).__name__ == 'CodeGemma'][0]\n"
                                "print(cg.temperature, cg.max_new_tokens, cg.context_cells)")
    assert reply["status"] == "ok"
    assert _text(outputs).strip().splitlines()[-1] == "0.2 5 1"
    reply, outputs = ks.execute("%codegemma set nonsense=1")
    assert "there is no setting 'nonsense'" in _text(outputs)
    for mistake, said in [("temprature=0.3", "did you mean temperature?"),
                          ("max_new_tokens=-5", "max_new_tokens takes a whole number of at least 1, not '-5'"),
                          ("dtype=int4", "dtype takes one of auto, float32, bfloat16, int8, not 'int4'"),
                          ("temperature", "expected KEY=VALUE")]:
        reply, outputs = ks.execute(f"%codegemma set {mistake}")
        lines = _text(outputs).strip().splitlines()
        assert reply["status"] == "ok" and len(lines) == 1 and said in lines[0], (mistake, lines)
    reply, outputs = ks.execute("%codegemma set max_new_tokens=256 temperature=0")
    reply, outputs = ks.execute("%codegemma help")
    assert "enable|disable" in _text(outputs) and "context_cells" in _text(outputs)
    reply, outputs = ks.execute("%codegemma status")
    assert "state" in _text(outputs) and "completions_enabled" in _text(outputs)
    reply, outputs = ks.execute("%codegemma disable\n%codegemma enable hints")
    text = _text(outputs)
    assert "completions, hints and generation disabled" in text and "hints enabled" in text
    reply, outputs = ks.execute("%%codegemma\nadd two numbers")  # exam mode: no generation either
    assert _text(outputs).strip().startswith("codegemma: %%codegemma, explain, fix and chat are switched off")
    reply, outputs = ks.execute("%codegemma explain")
    assert "switched off in this kernel (exam mode" in _text(outputs)
    ks.execute("%codegemma enable")


def test_load_of_a_missing_file_is_a_message_not_a_crash(ks):
    reply, outputs = ks.execute("%codegemma load /nonexistent/model.gguf")
    assert reply["status"] == "ok" and "/nonexistent/model.gguf" in _text(outputs)
    ks.execute("%codegemma set model=")  # back to the default model for the other tests
    assert ks.execute("1 + 1")[0]["status"] == "ok"


@pytest.mark.slow
def test_a_failed_load_keeps_the_working_model(ks):
    assert ks.execute("%codegemma load", timeout=300)[0]["status"] == "ok"
    reply, outputs = ks.execute("%codegemma load /nonexistent/model.gguf", timeout=120)
    said = _text(outputs)
    assert "/nonexistent/model.gguf" in said and "still using" in said and "Traceback" not in said
    status = _text(ks.execute("%codegemma status")[1])
    assert "ready" in status and "270" in status  # the default model answers as before
    settings = "from jupyter_codegemma.kernel import extension\nprint(repr(extension._loaded['settings'].model))"
    assert _text(ks.execute(settings)[1]).strip() == "''"  # the setting went back to the working model
    reply, outputs = ks.execute("%%codegemma --max-new-tokens 8 --no-insert\nadd two numbers", timeout=120)
    assert reply["status"] == "ok" and "tokens" in _text(outputs)  # the old model answered; no retry of the bad path


# --- the prompt helpers ----------------------------------------------------------------------


def test_previous_code_cells_skip_magics_and_empty_cells():
    history = ["", "import pandas as pd", "%load_ext jupyter_codegemma", "df = pd.read_csv('a.csv')",
               "%%codegemma\nplot it", "   ", "x = 1"]
    assert prompting.previous_code_cells(history, 2) == ["df = pd.read_csv('a.csv')", "x = 1"]
    assert prompting.previous_code_cells(history, 5) == ["import pandas as pd", "df = pd.read_csv('a.csv')", "x = 1"]
    assert prompting.previous_code_cells(history, 0) == []


def test_base_prompt_holds_context_and_request():
    prompt = prompting.base_prompt("Sort the words.", ["words = ['a', 'bbb']"])
    assert "words = ['a', 'bbb']" in prompt and "code to sort the words:" in prompt
    assert prompt.endswith("```python\n")
    assert prompting.trim_base_output("words.sort(key=len)\n```\nmore") == "words.sort(key=len)"


def test_chat_prompt_for_instruction_models():
    assert is_instruction_model("codegemma-7b-it") and not is_instruction_model("Gemma 3 270m")
    assert "Request: plot x" in prompting.chat_request("plot x", ["x = [1, 2]"])
    assert prompting.extract_code("Sure:\n```python\nprint(1)\n```\nDone.") == "print(1)"


def test_split_fill():
    assert prompting.split_fill("a <FILL> b") == ("a ", " b")
    with pytest.raises(ValueError):
        prompting.split_fill("a <FILL> <FILL>")
