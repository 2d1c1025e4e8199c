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


def test_complete_prefix_and_suffix():
    done = codegemma("complete", "--prefix", "total = sum(", "--suffix", ")\nprint(total)\n", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["mode"] == "line" and out["layout"] == "prefix-only"  # the default model has no FIM
    assert "\n" not in out["text"]
    # The text is the first candidate's (cut to a line) unless the check replaced it, and says which.
    assert out["checked"] in ("passed", "replaced", "ranked", "binds", "withheld") and out["candidates"] >= 1
    if out["checked"] == "passed":
        assert out["raw_text"].startswith(out["text"])
    assert {"prompt_ids", "ids", "text", "raw_text", "ttft_ms", "total_ms"} <= out.keys()


def test_complete_at_a_file_position(tmp_path):
    source = tmp_path / "mul.py"
    source.write_text("def mul(a, b):\n    return a * b\n\nx = mul(\n")
    done = codegemma("complete", "--file", str(source), "--line", "4", "--col", "9", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["prompt_ids"][-3:] != [] and out["mode"] == "line"
    done = codegemma("complete", "--file", str(source), "--line", "9", "--col", "1")
    assert done.returncode == 2 and "outside the file" in done.stderr


def test_complete_jsonl():
    lines = json.dumps({"prefix": "import numpy as", "suffix": "\n", "max_new_tokens": 4}) + "\n" + \
        json.dumps({"suffix": "x"}) + "\n"
    done = codegemma("complete", "--jsonl", "-", stdin=lines)
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1 and len(out) == 2
    assert "text" in out[0] and len(out[0]["ids"]) <= 4
    assert "expected" in out[1]["error"]
