"""The `codegemma` command, run as a user runs it: a real process per command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def codegemma(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jupyter_codegemma.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=600)


def test_info_json():
    done = codegemma("info", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["architecture"] == "gemma3" and info["fim"] is False
    assert {"model", "device", "dtype", "parameters"} <= info.keys()


def test_tokenize_text_and_jsonl():
    done = codegemma("tokenize", "hello world")
    assert done.returncode == 0, done.stderr
    ids = [int(i) for i in done.stdout.split()]
    assert ids[0] == 2 and len(ids) >= 3
    done = codegemma("tokenize", "--jsonl", "-", stdin='{"text": "hello world"}\n{"text": "x = 1"}\n')
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[0]["ids"] == ids and lines[1]["ids"][0] == 2


def test_generate_json_is_deterministic_and_complete():
    args = ("generate", "def square(x):\n", "--max-new-tokens", "6", "--json")
    first, second = codegemma(*args), codegemma(*args)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert {"prompt_ids", "ids", "text", "ttft_ms", "total_ms"} <= out.keys()
    assert len(out["ids"]) <= 6 and out["prompt_ids"][0] == 2
    assert json.loads(second.stdout)["ids"] == out["ids"]


def test_generate_streams_text():
    done = codegemma("generate", "import numpy as", "--max-new-tokens", "4")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    assert "prompt tokens" in done.stderr


def test_generate_jsonl_keeps_outputs_aligned_with_inputs():
    lines = "\n".join([
        json.dumps({"prompt": "x = ", "max_new_tokens": 3}),
        json.dumps({"prompt": ""}),
        "not json",
        json.dumps({"prompt_ids": [2, 1106], "max_new_tokens": 2, "temperature": 0.7, "seed": 1}),
        json.dumps({"text": "wrong key"}),
    ]) + "\n"
    done = codegemma("generate", "--jsonl", "-", stdin=lines)
    assert done.returncode == 1  # some lines failed
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(out) == 5
    assert len(out[0]["ids"]) <= 3 and "text" in out[0]
    assert "empty" in out[1]["error"] and out[1]["line"] == 2
    assert "not JSON" in out[2]["error"]
    assert out[3]["prompt_ids"] == [2, 1106] and len(out[3]["ids"]) == 2
    assert "expected" in out[4]["error"]


@pytest.mark.parametrize("args, message", [
    (("info", "--model", "/no/such/model.gguf"), "/no/such/model.gguf: no such file"),
    (("generate", ""), "the prompt is empty"),
    (("generate", "x", "--max-new-tokens", "0"), "max_new_tokens must be at least 1"),
    (("generate",), "give either PROMPT or --jsonl"),
    (("generate", "x", "--top-p", "1.5"), "top_p must be in (0, 1]"),
])
def test_bad_input_is_one_clear_line_and_status_2(args, message):
    done = codegemma(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
