"""The real default model against llama.cpp's reference outputs on the same GGUF file.

llama.cpp multiplies quantized weights by activations that it rounds to 8-bit blocks
(Q8_0 / Q8_K); we dequantize the weights and compute in float32. The two disagree by a
logit-level noise we measured on these prompts, teacher-forced along the reference ids:
the gap |ours - reference| between the chosen token's logit and the runner-up averages 0.17
and stays below 1.0. So each step is compared where the reference's margin exceeds that
noise (NOISE); below it, either token is a correct answer of a correct implementation.

The default engine on a CPU with AVX-512 VNNI runs int8 weights (one scale per row, requantized
from the file's 4- to 8-bit blocks) and rounds the activations to int8 blocks as llama.cpp
does, which adds its own noise to the margins: measured on these prompts, |our margin -
reference margin| averages 0.28 and peaks at 2.02, once (float32: 0.22 and 0.96). The argmax
must still agree at every confident step; the margins are held to INT8_MARGIN_NOISE instead.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import oracle_records

GREEDY = oracle_records("greedy")
TOKENIZE = oracle_records("tokenize")
NOISE = 1.0  # logits: above this reference margin, float32 and llama.cpp must agree
INT8_MARGIN_NOISE = 2.25  # how far int8 weights and activations may move a margin (measured peak 2.02)


def _steps_to_compare(record: dict, tolerance: float) -> int:
    gaps = record["top1_minus_top2_logit"]
    return next((i for i, gap in enumerate(gaps) if gap < tolerance), len(gaps))


@pytest.mark.parametrize("record", GREEDY, ids=[r["name"] for r in GREEDY])
def test_prompt_ids_match_llama_cpp(engine, record):
    assert engine.tokenize(record["prompt"]) == record["prompt_ids"]


@pytest.mark.parametrize("record", TOKENIZE, ids=[str(i) for i in range(len(TOKENIZE))])
def test_tokenize_matches_llama_cpp(engine, record):
    assert engine.tokenize(record["text"]) == record["ids_with_bos"]


@pytest.mark.parametrize("record", GREEDY, ids=[r["name"] for r in GREEDY])
def test_teacher_forced_argmax_matches_where_the_reference_is_confident(engine, record):
    ids = record["prompt_ids"] + record["greedy_ids"]
    logits = engine.forward_logits(ids)[len(record["prompt_ids"]) - 1:-1]  # [48, V]
    ours = logits.argmax(-1)
    reference = np.asarray(record["greedy_ids"])
    gaps = np.asarray(record["top1_minus_top2_logit"])
    confident = gaps >= NOISE
    assert confident.sum() >= len(gaps) // 2, "too few confident steps for a meaningful comparison"
    mismatched = np.flatnonzero(confident & (ours != reference))
    assert not mismatched.size, f"argmax differs at confident steps {mismatched.tolist()} (gaps {gaps[mismatched]})"
    # Our own margins track the reference's within the measured noise.
    chosen = logits[np.arange(len(reference)), reference]
    masked = logits.copy()
    masked[np.arange(len(reference)), reference] = -np.inf
    margin_noise = INT8_MARGIN_NOISE if engine.info()["dtype"] == "int8" else NOISE
    assert np.abs((chosen - masked.max(-1)) - gaps).max() < margin_noise


@pytest.mark.parametrize("record", GREEDY, ids=[r["name"] for r in GREEDY])
def test_greedy_generation_matches_up_to_the_first_near_tie(engine, record):
    """Free-running greedy decoding (prefill buckets, KV cache, sliding windows) follows the
    reference until the first step whose reference margin is within the float noise."""
    engine.reset_cache()
    result = engine.complete_text(record["prompt_ids"], max_new_tokens=48, stop_ids=())
    n = _steps_to_compare(record, NOISE)
    assert result.ids[:n] == record["greedy_ids"][:n]

