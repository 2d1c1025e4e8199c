"""Fill-in-the-middle prompts, stop ids, shaping of suggestions, and the chat template."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from fim_tokenizer import codegemma_like_tokenizer
from jupyter_codegemma.backends.local import config as configs
from jupyter_codegemma.backends import fim
from jupyter_codegemma.backends.base import COMPLETION_STOPS, stop_ids
from jupyter_codegemma.backends.chat import Turn, chat_prompt
from jupyter_codegemma.backends.local.checkpoints import Checkpoint
from jupyter_codegemma.backends.local.engine import Engine, EngineOptions
from jupyter_codegemma.backends.errors import PromptError
from jupyter_codegemma.backends.local.model import init_params

PREFIX, SUFFIX = "def f(x):\n    return ", "\n\nprint(f(2))\n"
BOS, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FILE_SEP = 2, 67, 68, 69, 70


@pytest.fixture(scope="module")
def tok():
    return codegemma_like_tokenizer()


def enc(tok, text):
    return tok.encode(text, add_bos=False)


def test_fim_pieces_have_codegemmas_ids(tok):
    ids = fim.FimTokens.of(tok)
    assert (ids.prefix, ids.middle, ids.suffix, ids.file_separator) == (67, 68, 69, 70)


def test_psm_layout(tok):
    assert fim.build_prompt(tok, PREFIX, SUFFIX) == (
        [BOS, FIM_PREFIX] + enc(tok, PREFIX) + [FIM_SUFFIX] + enc(tok, SUFFIX) + [FIM_MIDDLE])


def test_spm_layout(tok):
    assert fim.build_prompt(tok, PREFIX, SUFFIX, layout="spm") == (
        [BOS, FIM_PREFIX, FIM_SUFFIX] + enc(tok, SUFFIX) + [FIM_MIDDLE] + enc(tok, PREFIX))


def test_path_line_and_context_files(tok):
    files = [fim.ContextFile("utils.py", "def g():\n    pass\n"), fim.ContextFile("b.py", "import os\n")]
    ids = fim.build_prompt(tok, PREFIX, SUFFIX, path="main.py", context_files=files)
    assert ids == ([BOS] + enc(tok, "utils.py\ndef g():\n    pass\n") + [FILE_SEP] + enc(tok, "b.py\nimport os\n")
                   + [FILE_SEP] + enc(tok, "main.py\n") + [FIM_PREFIX] + enc(tok, PREFIX) + [FIM_SUFFIX]
                   + enc(tok, SUFFIX) + [FIM_MIDDLE])


def test_text_that_looks_like_a_control_token_stays_text(tok):
    ids = fim.build_prompt(tok, "x = '<|fim_middle|>'", "")
    assert ids.count(FIM_MIDDLE) == 1 and ids[-1] == FIM_MIDDLE


def test_a_budget_drops_what_is_farthest_from_the_cursor(tok):
    prefix, suffix = "a = 1\n" * 50, "b = 2\n" * 50
    files = [fim.ContextFile("far.py", "c = 3\n" * 20)]
    full = fim.build_prompt(tok, prefix, suffix, context_files=files)
    ids = fim.build_prompt(tok, prefix, suffix, context_files=files, max_tokens=200)
    assert len(ids) <= 200 < len(full)
    assert FILE_SEP not in ids  # the context file went first
    p, s = ids.index(FIM_PREFIX), ids.index(FIM_SUFFIX)
    prefix_ids, suffix_ids = ids[p + 1:s], ids[s + 1:-1]
    assert enc(tok, prefix)[-len(prefix_ids):] == prefix_ids  # the end of the prefix is kept
    assert enc(tok, suffix)[:len(suffix_ids)] == suffix_ids  # the start of the suffix is kept
    assert len(suffix_ids) >= (200 - 4) // 4 - 1


def test_stop_ids(tok):
    assert set(stop_ids(tok, COMPLETION_STOPS)) == {1, 67, 68, 69, 70, 107}


def test_without_fim_pieces_the_prompt_is_the_prefix():
    class NoFim:
        bos_id, eos_id = 2, 1

        def piece_to_id(self, piece):
            return None

        def encode(self, text, add_bos=True):
            return [ord(c) for c in text]

    assert fim.build_prompt(NoFim(), "abc", "xyz") == [2, 97, 98, 99]
    assert fim.build_prompt(NoFim(), "abcdef", "xyz", max_tokens=3) == [2, 101, 102]


# --- the engine stops on every stop id ----------------------------------------------------------


def engine_that_writes(tok, token: int) -> Engine:
    """A tiny model whose greedy choice after a PSM prompt is `token`.

    With the attention and feed-forward outputs zeroed, the final hidden state is the
    normalised embedding of the last prompt token (<|fim_middle|>); an embedding row for
    `token` that points the same way, twice as long, wins the argmax.
    """
    config = configs.tiny_gemma1_mqa()
    params = jax.tree.map(np.asarray, init_params(config, seed=3))
    for i in range(config.num_layers):
        params[f"layer_{i}"]["attn"]["output"]["w"] = np.zeros_like(params[f"layer_{i}"]["attn"]["output"]["w"])
        params[f"layer_{i}"]["mlp"]["down"]["w"] = np.zeros_like(params[f"layer_{i}"]["mlp"]["down"]["w"])
    params["final_norm"]["scale"] = np.zeros_like(params["final_norm"]["scale"])
    embedding = np.array(params["embedder"]["input_embedding"])
    direction = np.random.RandomState(0).randn(config.embed_dim).astype(np.float32)
    embedding[FIM_MIDDLE] = direction * 10
    if token != FIM_MIDDLE:
        embedding[token] = direction * 20
    params["embedder"]["input_embedding"] = embedding
    checkpoint = Checkpoint(config=config, params=params, tokenizer=tok, source="tiny", format="test")
    return Engine(checkpoint, EngineOptions(cache_len=128, compilation_cache=False))


@pytest.mark.parametrize("stop", [1, 67, 68, 69, 70, 107])
def test_completion_stops_on_each_stop_id(tok, stop):
    engine = engine_that_writes(tok, stop)
    assert engine.has_fim
    completion = engine.complete(PREFIX, SUFFIX, mode="block", max_new_tokens=20)
    assert list(completion) == []
    result = completion.result
    assert result.ids == [stop] and result.text == "" and result.stats.finish_reason == "stop"
    assert result.prompt_ids[-1] == FIM_MIDDLE and result.layout == "psm"


def test_a_non_stop_token_keeps_generating(tok):
    letter = tok.piece_to_id("x")
    result = engine_that_writes(tok, letter).complete(PREFIX, SUFFIX, mode="line", max_new_tokens=5).wait()
    assert result.ids == [letter] * 5 and result.text == "xxxxx"


# --- shaping ------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix, suffix, expected", [
    ("def f(x):\n", "", "block"),
    ("def f(x):\n    ", "", "block"),
    ("x = foo(", ")\n", "line"),
    ("total = 1", "\n", "line"),
    ("if ok:", "\n", "block"),
    # The header of a compound statement being written, with no body below it yet: it and its body.
    ("def f(ops):\n    for op in o", "\n\n    return False\n", "block"),
    ("    while i < ", "\n", "block"),
    ("def f(ops):\n    for op in o", "\n        total += op\n", "line"),  # its body is there
    ("    format_it = ", "\n", "line"),  # a word that starts like a keyword is not one
])
def test_auto_mode(prefix, suffix, expected):
    assert fim.resolve_mode("auto", prefix, suffix) == expected


@pytest.mark.parametrize("raw, prefix, suffix, mode, expected, complete", [
    ("a, b)\nprint(1)", "x = foo(", ")\n", "line", "a, b", True),  # stops at the line and the suffix's ')'
    ("a, b", "x = foo(", ")\n", "line", "a, b", False),  # still streaming
    ("    return x\n\ndef g():\n    pass", "def f(x):\n", "", "block", "    return x", True),
    ("\n    return x\n\ndef g():\n", "def f(x):", "", "block", "\n    return x", True),
    ("    y = x * 2\n    return y\nprint(f(1))", "def f(x):\n", "", "block", "    y = x * 2\n    return y", True),
    ("    return x\n", "def f(x):\n", "\nprint(f(2))\n", "block", "    return x\n", False),
    ("    return x\nprint(f(2))\n", "def f(x):\n", "print(f(2))\n", "block", "    return x", True),
    ("1, 2)\nprint(x)\n\nfoo", "x = mul(", "\n", "line", "1, 2)", True),
    ("a = 1\nb = 2\n\nc = 3", "", "", "block", "a = 1\nb = 2", True),  # top level: a blank line ends it
    # A header written from the cursor: its body, up to the line indented as the header is.
    ("perations:\n        total += op\n    return total", "def f(ops):\n    for op in o", "\n", "block",
     "perations:\n        total += op", True),
    ("perations:  # each\n        total += op\n    return", "    for op in o", "\n", "block",
     "perations:  # each\n        total += op", True),
    # ... or the header alone where it ends on its own line (`if not ops: return 0`).
    (" not ops: return 0\n    total = 0", "    if", "\n", "block", " not ops: return 0", True),
])
def test_shaping(raw, prefix, suffix, mode, expected, complete):
    shaped = fim.shape(raw, prefix, suffix, mode)
    assert (shaped.text, shaped.complete) == (expected, complete)


def test_suffix_repeated_at_the_end_is_trimmed():
    assert fim.shape("len(items))", "n = ", ")\n", "line", final=True).text == "len(items)"
    assert fim.shape("items]", "x = [", "]\n", "line", final=True).text == "items"


# --- chat template ------------------------------------------------------------------------------


def test_chat_template(tok):
    ids = chat_prompt(tok, [Turn("user", "Hi"), Turn("model", "Hello"), Turn("user", "Sort a list")])
    expected = ([BOS, 106] + enc(tok, "user\nHi") + [107] + enc(tok, "\n") + [106] + enc(tok, "model\nHello")
                + [107] + enc(tok, "\n") + [106] + enc(tok, "user\nSort a list") + [107] + enc(tok, "\n")
                + [106] + enc(tok, "model\n"))
    assert ids == expected


def test_chat_system_text_joins_the_first_user_turn(tok):
    ids = chat_prompt(tok, [Turn("user", "Sort a list")], system="Answer with code.")
    assert ids[:2] == [BOS, 106] and enc(tok, "user\nAnswer with code.\n\nSort a list") == ids[2:ids.index(107)]


def test_chat_errors(tok):
    with pytest.raises(PromptError, match="end with a user turn"):
        chat_prompt(tok, [Turn("user", "a"), Turn("model", "b")])
    with pytest.raises(PromptError, match="unknown chat role"):
        chat_prompt(tok, [Turn("system", "a"), Turn("user", "b")])
