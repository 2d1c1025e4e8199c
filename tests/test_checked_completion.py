"""The local engine's completions on the real default model: constrained to names that exist
(backends/local/constraint.py), and checked before they are shown, with alternatives when the
first fails (backends/local/alternatives.py)."""

from __future__ import annotations

import numpy as np
import pytest

from jupyter_codegemma.backends.base import SamplingParams
from jupyter_codegemma.backends.candidates import check, leaves_open
from jupyter_codegemma.backends.line_to_write import NONE, _arity, binding, lines_that_bind, names_to_bind
from jupyter_codegemma.backends.local.alternatives import (SCORED_CHARS, SCORED_LINES, _following_code, _next_code_line,
                                                           _only_comments)
from jupyter_codegemma.backends.local.constraint import NameTrie, identifier_continuing
from jupyter_codegemma.backends.local.scoring import continuation_logprob
from jupyter_codegemma.evaluation.data import load_tasks

PREFIX = "import os\n\nfiles = os."


def test_a_constrained_completion_begins_with_a_name_the_model_chooses(engine):
    free = engine.complete(PREFIX, "", mode="line").wait().text
    chosen = free.split("(")[0]
    assert chosen.isidentifier()
    # The model chooses among the names: its own choice among others stays its choice ...
    constrained = engine.complete(PREFIX, "", mode="line", allowed_names=["getcwd", chosen, "sep"]).wait()
    # (The name, not the whole line: the masked steps read their logits from a prompt chunk, the free
    # completion from decode steps and draft checks. Here the next token is a near-tie — `("` against
    # `('`, 0.14 apart, with float32 itself preferring `('` — which the two int8 paths break apart.)
    assert constrained.text.split("(")[0] == chosen and constrained.text.startswith(chosen + "(")
    # ... and a name it would never write is written when it is the only one.
    assert engine.complete(PREFIX, "", mode="line", allowed_names=["zz_made_up"]).wait().text.startswith("zz_made_up")
    # A whole name, then a token that does not lengthen it: "get" is not "getcwd". (Unchecked: what the
    # model writes after a name `os` lacks is its own; the check may withhold it.)
    text = engine.complete(PREFIX, "", mode="line", allowed_names=["get"], check=False).wait().text
    assert text.startswith("get") and not (text[3:4].isalnum() or text[3:4] == "_")


def test_constrained_sampling_stays_among_the_names(engine):
    names = ["sep", "linesep", "pathsep"]
    for seed in range(3):
        sampling = SamplingParams(temperature=1.0, top_k=40, seed=seed)
        text = engine.complete(PREFIX, "", mode="line", allowed_names=names, sampling=sampling, check=False).wait().text
        assert any(text.startswith(n) and not text[len(n):len(n) + 1].isidentifier() for n in names), text


def test_the_trie_masks_to_the_names_next_tokens(engine):
    trie = NameTrie(engine.tokenizer, ["shape", "size"])
    first = trie.allowed(trie.root)
    expected = {engine.tokenizer.encode(n, add_bos=False)[0] for n in ("shape", "size")}
    assert set(np.flatnonzero(first)) == expected
    continues = identifier_continuing(engine.tokenizer)
    assert continues[engine.tokenizer.encode("abc", add_bos=False)[0]]
    assert not continues[engine.tokenizer.encode("(", add_bos=False)[0]]


def test_a_first_suggestion_that_passes_is_shown_unchanged(engine):
    prefix, suffix = "def double(x):\n", "\n"
    unchecked = engine.complete(prefix, suffix, mode="line", check=False).wait()
    checked = engine.complete(prefix, suffix, mode="line").wait()
    assert checked.checked == "passed" and checked.candidates == 1 and checked.text == unchecked.text


def test_a_first_suggestion_that_fails_is_replaced_by_one_that_passes(engine):
    # HumanEval/1, line 4: the lines below read `c`, which the model's own line does not bind (it loops
    # over `char` on the AVX-512 and AMX kernels, over `i` in a range on the AVX2 ones).
    task = load_tasks("single-line", task_ids=("SingleLineInfilling/HumanEval/1/L4",))[0]
    suffix = "\n" + task.suffix
    first = engine.complete(task.prompt, suffix, mode="line", check=False).wait().text
    assert "'c' is read and never bound" in check(task.prompt, first, suffix, namespace=()).reason
    result = engine.complete(task.prompt, suffix, mode="line", namespace=()).wait()
    assert result.checked == "replaced" and result.candidates > 1 and result.text != first
    assert check(task.prompt, result.text, suffix, namespace=()).ok


def test_a_suggestion_that_binds_what_the_code_after_it_reads_is_shown_before_one_that_does_not(engine):
    # HumanEval/20, line 10: the lines below read `new_distance` before anything binds it. The model's
    # own line passes the check but binds something else; one that binds `new_distance` is shown.
    task = load_tasks("single-line", task_ids=("SingleLineInfilling/HumanEval/20/L10",))[0]
    suffix = "\n" + task.suffix
    needed = names_to_bind(task.prompt, suffix, ())
    assert needed == ("new_distance",)
    own = engine.complete(task.prompt, suffix, mode="line", namespace=(), check=False).wait().text
    assert check(task.prompt, own, suffix, namespace=()).ok
    assert binding(task.prompt, own, suffix, needed, ()) == NONE
    completion = engine.complete(task.prompt, suffix, mode="line", namespace=())
    shown = list(completion)
    result = completion.wait()
    assert shown == [result.text]  # the first suggestion, passed over, was never shown
    assert result.checked == "binds" and result.candidates > 1 and result.text != own
    assert check(task.prompt, result.text, suffix, namespace=()).ok
    assert binding(task.prompt, result.text, suffix, needed, ()) != NONE
    # Where the namespace is unknown (the kernel may hold the name), the model's own line stays.
    unknown = engine.complete(task.prompt, suffix, mode="line").wait()
    assert unknown.checked == "passed" and unknown.text == own


def test_a_replacement_binds_what_the_code_after_it_reads_when_one_can(engine):
    # HumanEval/6, line 2: the model's own line fails the check (a `for` with no body); of the
    # alternatives that pass, one that binds `max_depth`, which the lines below read first, is shown.
    task = load_tasks("single-line", task_ids=("SingleLineInfilling/HumanEval/6/L2",))[0]
    suffix = "\n" + task.suffix
    needed = names_to_bind(task.prompt, suffix, ())
    assert needed == ("max_depth",)
    result = engine.complete(task.prompt, suffix, mode="line", namespace=()).wait()
    assert result.checked == "replaced" and result.candidates > 1
    assert check(task.prompt, result.text, suffix, namespace=()).ok
    assert binding(task.prompt, result.text, suffix, needed, ()) != NONE


def test_a_module_the_code_after_the_cursor_reads_is_imported_there(engine):
    # HumanEval/91, line 0: the function below calls `re.split` and nothing imports `re`.
    task = load_tasks("single-line", task_ids=("SingleLineInfilling/HumanEval/91/L0",))[0]
    suffix = "\n" + task.suffix
    assert names_to_bind(task.prompt, suffix, ()) == ("re",)
    result = engine.complete(task.prompt, suffix, mode="line", namespace=()).wait()
    assert result.text == "    import re" and result.checked in ("binds", "replaced")


def test_a_line_that_opens_the_block_below_binds_what_the_block_reads(engine):
    # HumanEval/11, line 0: the block below reads `i` and `j`, and the function's last line calls `xor`;
    # without the line the body has no header, so the names are found with a placeholder there. The
    # model's own line is something else (`result = ''`, which fails the check); the header that binds
    # them all is written: a function, as the code calls it, its parameters the names its block reads.
    task = load_tasks("single-line", task_ids=("SingleLineInfilling/HumanEval/11/L0",))[0]
    suffix = "\n" + task.suffix
    needed = names_to_bind(task.prompt, suffix, ())
    assert needed == ("i", "j", "xor")
    own = engine.complete(task.prompt, suffix, mode="line", namespace=(), check=False).wait().text
    result = engine.complete(task.prompt, suffix, mode="line", namespace=()).wait()
    assert result.text == "    def xor(i, j):" != own and result.candidates > 1
    assert names_to_bind(task.prompt + result.text, suffix, ()) == ()
    # HumanEval/0, line 0: a loop, over both names the block reads (the model's own binds neither).
    task = load_tasks("single-line", task_ids=("SingleLineInfilling/HumanEval/0/L0",))[0]
    suffix = "\n" + task.suffix
    assert names_to_bind(task.prompt, suffix, ()) == ("idx", "elem")
    result = engine.complete(task.prompt, suffix, mode="line", namespace=()).wait()
    assert result.text.startswith("    for idx, elem in ") and check(task.prompt, result.text, suffix, namespace=()).ok
    assert names_to_bind(task.prompt + result.text, suffix, ()) == ()


def test_two_names_the_code_after_the_cursor_needs_are_bound_together(engine):
    # HumanEval/140, line 2: the loop below reads `end` and `start`, and nothing binds either.
    task = load_tasks("single-line", task_ids=("SingleLineInfilling/HumanEval/140/L2",))[0]
    suffix = "\n" + task.suffix
    needed = names_to_bind(task.prompt, suffix, ())
    assert set(needed) == {"start", "end"}
    result = engine.complete(task.prompt, suffix, mode="line", namespace=()).wait()
    assert result.text.startswith(f"    {', '.join(needed)} = ") and check(task.prompt, result.text, suffix, namespace=()).ok
    assert names_to_bind(task.prompt + result.text, suffix, ()) == ()


def test_a_line_still_to_write_gets_code_rather_than_a_comment_alone(engine):
    # HumanEval/84, line 0: the function's whole body is one line, and the model's own is a comment.
    task = load_tasks("single-line", task_ids=("SingleLineInfilling/HumanEval/84/L0",))[0]
    suffix = "\n" + task.suffix
    own = engine.complete(task.prompt, suffix, mode="line", namespace=(), check=False).wait().text
    assert own.strip().startswith("#") and check(task.prompt, own, suffix, namespace=()).ok
    completion = engine.complete(task.prompt, suffix, mode="line", namespace=())
    shown = list(completion)
    result = completion.wait()
    assert result.checked == "replaced" and result.candidates > 1 and not _only_comments(result.text)
    assert check(task.prompt, result.text, suffix, namespace=()).ok
    assert shown == [result.text]  # the comment, passed over, was never shown


def test_one_line_asked_for_is_one_that_can_stand(engine):
    # HumanEval/23, line 0 (`strlen`'s only line): the model's own opens an `if` that nothing after it
    # fills. Asked for one line, one that stands is shown; asked for a block, the `if` may have its body.
    task = load_tasks("single-line", task_ids=("SingleLineInfilling/HumanEval/23/L0",))[0]
    suffix = "\n" + task.suffix
    own = engine.complete(task.prompt, suffix, mode="line", namespace=(), check=False).wait().text
    assert own.lstrip().startswith("if ") and leaves_open(task.prompt, own, suffix)
    result = engine.complete(task.prompt, suffix, mode="line", namespace=()).wait()
    assert result.checked == "replaced" and result.text.strip() and not leaves_open(task.prompt, result.text, suffix)
    assert check(task.prompt, result.text, suffix, namespace=()).ok
    block = engine.complete(task.prompt, suffix, mode="block", namespace=()).wait()
    assert block.text.lstrip().startswith("if ") and "\n" in block.text


def test_one_line_asked_for_is_not_the_next_line_again(engine):
    # HumanEval/20, line 12: the model's own line is the one just below it (`closest_pair = ...`).
    task = load_tasks("single-line", task_ids=("SingleLineInfilling/HumanEval/20/L12",))[0]
    suffix = "\n" + task.suffix
    below = _next_code_line(suffix)
    assert below == "closest_pair = tuple(sorted([elem, elem2]))"
    own = engine.complete(task.prompt, suffix, mode="line", namespace=(), check=False).wait().text
    assert own.strip() == below
    result = engine.complete(task.prompt, suffix, mode="line", namespace=()).wait()
    assert result.checked == "replaced" and result.text.strip() not in ("", below)  # the model's next best
    assert check(task.prompt, result.text, suffix, namespace=()).ok


def test_a_function_header_takes_as_many_parameters_as_its_calls_pass():
    suffix = "\n        return str(n) == str(n)[::-1]\n\n    for i in range(n):\n        if i and is_palindrome(i):\n"
    assert _arity(suffix, "is_palindrome") == 1
    assert _arity("\n    return ''.join(xor(x, y) for x, y in zip(a, b))\n", "xor") == 2
    assert _arity("\n    return f(*args)\n", "f") is None  # not readable: the model writes the parameters
    # The block reads no name that nothing binds (`n` is the function's around it), while the call
    # passes one argument: the header is begun, and the model writes the parameters.
    assert lines_that_bind(("is_palindrome",), "    ", "    pass", suffix) == ["    def is_palindrome("]
    block = "\n        if i == j:\n            return 0\n\n    return ''.join(xor(x, y) for x, y in zip(a, b))\n"
    assert lines_that_bind(("i", "j", "xor"), "    ", "", block) == ["    def xor(i, j):", "    for i, j in"]
    assert lines_that_bind(("start", "end"), None, "    x = 1", "\n") == ["    start, end =", "    start ="]
    assert lines_that_bind(("re", "total"), None, "  pass", "\n") == ["  import re", "  total ="]


def test_names_to_bind_are_sought_only_for_a_line_still_to_write(engine):
    # Inside a line (`n = len(` before the cursor) what the code below reads is bound elsewhere: the
    # model's own text, which binds nothing, is shown as it is.
    prefix, suffix = "def f(words):\n    n = len(", ")\n    return n * total\n"
    assert names_to_bind(prefix, suffix, ()) == ("total",)
    plain = engine.complete(prefix, suffix, mode="line", namespace=(), check=False).wait()
    assert plain.text and check(prefix, plain.text, suffix, namespace=()).ok
    result = engine.complete(prefix, suffix, mode="line", namespace=()).wait()
    assert result.checked == "passed" and result.candidates == 1 and result.text == plain.text


def test_no_text_that_fails_the_check_is_streamed_before_the_replacement(engine):
    # The same first suggestion as above fails (it reads `char`); while it streamed, its texts that
    # already read the made-up name were not shown, so the editor never held them.
    task = load_tasks("single-line", task_ids=("SingleLineInfilling/HumanEval/1/L4",))[0]
    suffix = "\n" + task.suffix
    unchecked = list(engine.complete(task.prompt, suffix, mode="line", namespace=(), check=False))
    assert any(not check(task.prompt, text, suffix, namespace=()).ok for text in unchecked)
    completion = engine.complete(task.prompt, suffix, mode="line", namespace=())
    shown = list(completion)
    assert shown and all(check(task.prompt, text, suffix, namespace=()).ok for text in shown), shown
    assert shown[-1] == completion.wait().text


def test_ranking_by_the_code_after_the_gap_shows_the_likeliest_passing_suggestion(engine):
    # HumanEval/95, line 20: the model's own line passes the check; ranked by the lines of code after the
    # gap, the suggestion shown is, of those written, the one the model finds likeliest followed by them.
    task = load_tasks("single-line", task_ids=("SingleLineInfilling/HumanEval/95/L20",))[0]
    suffix = "\n" + task.suffix
    own = engine.complete(task.prompt, suffix, mode="line", namespace=()).wait()
    assert own.checked == "passed"
    completion = engine.complete(task.prompt, suffix, mode="line", namespace=(), rank_by_suffix=True)
    shown = list(completion)
    result = completion.wait()
    assert shown == [result.text]  # nothing streamed before the ranking chose
    assert result.checked in ("passed", "ranked") and result.candidates > 1
    assert (result.checked == "passed") == (result.text == own.text)
    assert check(task.prompt, result.text, suffix, namespace=()).ok
    following = _following_code(suffix)
    assert following == suffix  # its one line of code (the function's last)
    prompt = list(result.prompt_ids)
    with engine._sampler._lock:
        chosen, first = (continuation_logprob(engine._sampler, prompt + engine.tokenize(text + following, add_bos=False),
                                              len(prompt)) for text in (result.text, own.text))
    assert chosen >= first - 1e-3


def test_the_ranking_scores_the_next_lines_of_code_after_the_gap():
    suffix = "\n    a = 1\n\n    # why\n    b = 2\n    c = 3\n    d = 4\n"
    assert SCORED_LINES == 3 and _following_code(suffix) == "\n    a = 1\n\n    # why\n    b = 2\n    c = 3"
    assert _following_code("\n\n# only a comment\n") == ""
    assert len(_following_code("\n" + "x = 1\n" * 50 + "y" * 900)) <= SCORED_CHARS


def test_a_continuation_is_scored_from_the_cached_prompt_as_the_sampler_would_predict_it(engine):
    sampler = engine._sampler
    prompt = engine.tokenize("def add(a, b):\n    total = a + b\n")
    rest = engine.tokenize("    return total\n", add_bos=False)
    with sampler._lock:
        sampler.reset()
        sampler.prefill(prompt[:-1])
        _, logits = sampler.prefill(prompt)  # the last prompt token alone, in the smallest chunk
        logits = np.asarray(logits[0], np.float64)
        expected = logits[rest[0]] - logits.max() - np.log(np.exp(logits - logits.max()).sum())
        # The same chunk, at the same place: the cache holds the prompt, and the last token runs again.
        assert continuation_logprob(sampler, prompt + rest[:1], len(prompt)) == pytest.approx(expected, abs=1e-4)
        warm = continuation_logprob(sampler, prompt + rest, len(prompt))
        assert sampler._cached_ids == prompt + rest  # what the next keystroke's prompt reuses
        # Less of the prompt cached, in a chunk of the same padded length: the same result, so what the
        # cache held is read as if it had just been computed.
        ids, shorter = prompt + rest, len(prompt) // 2
        (_, _, padded, _), = sampler._chunks(len(prompt) - 1, len(ids))
        assert [chunk[2] for chunk in sampler._chunks(shorter, len(ids))] == [padded]
        sampler.reset()
        sampler.prefill(prompt[:shorter])
        assert continuation_logprob(sampler, ids, len(prompt)) == pytest.approx(warm, abs=1e-4)
        # Nothing cached: the whole text in one longer chunk. A program of another shape rounds its
        # float32 sums in another order, and the int8 activations turn those last bits into flipped
        # rounding steps: up to 0.1 nats a token apart on an AVX-512 Xeon (0.04-0.15 over these 4
        # tokens on its three kernel paths; on XLA's float32 fallback at most 1.1e-5 a token).
        sampler.reset()
        cold = continuation_logprob(sampler, ids, len(prompt))
        assert cold == pytest.approx(warm, abs=0.1 * len(rest)) and cold < 0
        with pytest.raises(ValueError, match="non-empty"):
            continuation_logprob(sampler, prompt, len(prompt))
    # The cache it leaves serves generation as the sampler's own prefill of the same text (in the same
    # chunk) would. Not as an empty cache would: that one's prompt runs in another chunk than the
    # last token alone, and on the VNNI kernel the 0.1-nat noise above flips a near tie among these
    # tokens.
    after = engine.complete_text(ids, max_new_tokens=6).ids
    with sampler._lock:
        sampler.reset()
        sampler.prefill(ids)
    assert engine.complete_text(ids, max_new_tokens=6).ids == after


def test_ranking_by_the_code_after_the_gap_needs_code_there(engine):
    prefix, suffix = "def double(x):\n", "\n"
    ranked = engine.complete(prefix, suffix, mode="line", rank_by_suffix=True).wait()
    plain = engine.complete(prefix, suffix, mode="line").wait()
    assert ranked.checked == "passed" and ranked.candidates == 1 and ranked.text == plain.text
