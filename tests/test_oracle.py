"""The real default model against reference outputs on the same GGUF file.

Tokenization must equal llama.cpp's. Logits are held to a float32 reference: Hugging Face
`transformers` (float32, eager attention) on the GGUF dequantized to float32 — the exact
architecture without llama.cpp's 8-bit activation rounding (tests/data/gemma3_270m_public_f32.jsonl).
Greedy decoding must follow its ids up to the first step whose top1–top2 gap is below a
tolerance, where a correct implementation with other rounding may pick the other token:

- dtype float32: 0.05 (float summation order only);
- the default dtype (int8 weights and int8 activation blocks where a native kernel runs): 0.5,
  as faithful as llama.cpp itself (12/12 prompts at 0.5, 11/12 at 0.25), on every kernel path
  the CPU has: the session's engine takes the best one, and the lower ones, down to the XLA
  fallback (no kernel: int8 weights, float activations), run in a child process with the better
  kernels switched off (native.SWITCHES).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import oracle_records

GREEDY = oracle_records("greedy", reference="float32")
TOKENIZE = oracle_records("tokenize")
FLOAT32_TOLERANCE = 0.05  # logits: the float32 reference's gap below which either token is right
DEFAULT_TOLERANCE = 0.5  # the same with int8 weights and activations (llama.cpp: 12/12 prompts)
# Set in a child process (test_lower_kernel_paths_follow_the_reference): the ISA class its
# engine must run on.
EXPECTED_ISA = "CODEGEMMA_TEST_EXPECTED_ISA"


def _steps_to_compare(record: dict, tolerance: float) -> int:
    gaps = record["top1_minus_top2_logit"]
    return next((i for i, gap in enumerate(gaps) if gap < tolerance), len(gaps))


@pytest.fixture(scope="module")
def float32_engine():
    from jupyter_codegemma.backends.local import Engine, EngineOptions

    return Engine.load(options=EngineOptions(dtype="float32"))


@pytest.mark.parametrize("record", oracle_records("greedy"), ids=[r["name"] for r in GREEDY])
def test_prompt_ids_match_llama_cpp(engine, record):
    assert engine.tokenize(record["prompt"]) == record["prompt_ids"]


@pytest.mark.parametrize("record", TOKENIZE, ids=[str(i) for i in range(len(TOKENIZE))])
def test_tokenize_matches_llama_cpp(engine, record):
    assert engine.tokenize(record["text"]) == record["ids_with_bos"]


def _greedy_ids(engine, record: dict) -> list[int]:
    """Free-running greedy decoding: prefill buckets, KV cache, sliding windows, draft checks."""
    engine.reset_cache()
    return engine.complete_text(record["prompt_ids"], max_new_tokens=48, stop_ids=()).ids


@pytest.mark.parametrize("record", GREEDY, ids=[r["name"] for r in GREEDY])
def test_float32_follows_the_float32_reference(float32_engine, record):
    n = _steps_to_compare(record, FLOAT32_TOLERANCE)
    assert _greedy_ids(float32_engine, record)[:n] == record["greedy_ids"][:n]


@pytest.mark.parametrize("record", GREEDY, ids=[r["name"] for r in GREEDY])
def test_default_dtype_follows_the_float32_reference(engine, record):
    from jupyter_codegemma.backends.local import native

    if os.environ.get(EXPECTED_ISA):
        assert native.isa_class() == os.environ[EXPECTED_ISA], native.native_unavailable_reason()
    # Where no kernel runs (the "xla" class) the default dtype is float32, held to float32's tolerance.
    tolerance = FLOAT32_TOLERANCE if engine.info()["dtype"] == "float32" else DEFAULT_TOLERANCE
    n = _steps_to_compare(record, tolerance)
    ours = _greedy_ids(engine, record)[:n]
    assert ours == record["greedy_ids"][:n], (
        f"kernels {engine.info()['kernels']}: differs from step {next(i for i, (a, b) in enumerate(zip(ours, record['greedy_ids'])) if a != b)}")


@pytest.mark.parametrize("isa", ["avx512-vnni", "avx2", "xla"])
def test_lower_kernel_paths_follow_the_float32_reference(engine, isa):
    """On a CPU with a better kernel, the default dtype on this lower one, or on the fallback (forced
    by switching the better ones off), passes the test above too, in a child process (the choice is made once
    per process)."""
    from jupyter_codegemma.backends.local import native

    order = native.ISA_CLASSES
    if isa not in native.cpu_isa_classes() or order.index(isa) <= order.index(native.isa_class()):
        pytest.skip(f"the {isa} kernel is not a lower path on this CPU (this process runs {native.isa_class()})")
    env = {**os.environ, EXPECTED_ISA: isa}
    for better in order[:order.index(isa)]:
        if better in native.SWITCHES:
            env[native.SWITCHES[better]] = "0"
    here = Path(__file__).parent
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(here / "test_oracle.py"),
                           "-k", "test_default_dtype_follows"], cwd=here.parent, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:]
    assert f"{len(GREEDY)} passed" in done.stdout
