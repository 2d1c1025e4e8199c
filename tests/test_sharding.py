"""A model spread over 4 (simulated) devices gives the same logits and tokens as one device.

`--xla_force_host_platform_device_count` must be set before JAX starts, so the check runs in a
child Python process with XLA_FLAGS set; it prints one JSON line that the test reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from jupyter_codegemma.backends.local.engine import EngineOptions, resolve_dtype
from jupyter_codegemma.backends.errors import SettingsError

CHILD = textwrap.dedent(r"""
    import json, sys
    import jax, numpy as np
    from gguf_writer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, tiny_vocab
    from jupyter_codegemma.backends.local import config as configs, sharding
    from jupyter_codegemma.backends.local.checkpoints import Checkpoint
    from jupyter_codegemma.backends.local.engine import Engine, EngineOptions
    from jupyter_codegemma.backends.local.model import init_params
    from jupyter_codegemma.backends.base import SamplingParams
    from jupyter_codegemma.backends.local.checkpoints.gguf_vocab import tokenizer_from_gguf_vocab

    IDS = [BOS_ID, 300, 17, 511, 260, 261, 400, 42, 5, 300, 300, 1, 77, 450]
    tokens, scores, types = tiny_vocab(512)
    tokenizer = tokenizer_from_gguf_vocab(tokens, scores, types, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=UNK_ID,
                                          pad_id=PAD_ID)
    out = {"device_count": len(jax.devices())}
    for name in ("tiny-gemma1-mqa", "tiny-gemma1-mha"):
        config = configs.preset(name)
        params = jax.tree.map(np.asarray, init_params(config, seed=3))
        ckpt = Checkpoint(config=config, params=params, tokenizer=tokenizer, source=name, format="test")
        result = {}
        for devices in (1, 4):
            engine = Engine(ckpt, EngineOptions(dtype="float32", cache_len=64, devices=devices,
                                                compilation_cache=False))
            sampler = engine._sampler
            logits = sampler.forward_logits(IDS)
            generated = list(sampler.generate(IDS, max_new_tokens=6, sampling=SamplingParams(temperature=0.0)))
            # The decode step's logits: prefill then one decode on the cached prompt.
            seen = []
            list(sampler.generate(IDS[:-1] + [IDS[-1]], max_new_tokens=3, sampling=SamplingParams(temperature=0.0),
                                  on_logits=lambda l: seen.append(np.asarray(l)[0])))
            specs = sharding.describe(sampler.params)
            cache_spec = str(sampler._cache[0]["k"].sharding.spec) if devices > 1 else ""
            result[devices] = dict(logits=logits, generated=generated, step_logits=np.stack(seen),
                                   specs=specs, cache_spec=cache_spec, info_devices=engine.info()["devices"])
        one, four = result[1], result[4]
        out[name] = {
            "max_abs_logits": float(np.abs(one["logits"] - four["logits"]).max()),
            "max_abs_step_logits": float(np.abs(one["step_logits"] - four["step_logits"]).max()),
            "generated_1": one["generated"], "generated_4": four["generated"],
            "qkv_spec": four["specs"]["layer_0/attn/qkv/w"],
            "down_spec": four["specs"]["layer_0/mlp/down/w"],
            "output_spec": four["specs"]["layer_0/attn/output/w"],
            "norm_spec": four["specs"]["layer_0/pre_attention_norm/scale"],
            "cache_spec": four["cache_spec"],
            "info_devices": [one["info_devices"], four["info_devices"]],
        }
    print("RESULT " + json.dumps(out))
""")

TOLERANCE = 1e-5  # float32; the sharded program only reorders sums


@pytest.fixture(scope="module")
def sharded_run() -> dict:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    tests_dir = os.path.dirname(__file__)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [tests_dir, env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_four_devices_present(sharded_run):
    assert sharded_run["device_count"] == 4


@pytest.mark.parametrize("name", ["tiny-gemma1-mqa", "tiny-gemma1-mha"])
def test_sharded_logits_equal_one_device(sharded_run, name):
    r = sharded_run[name]
    assert r["info_devices"] == [1, 4]
    # Really sharded: heads / FFN split over the "model" axis, norms replicated.
    assert "model" in r["qkv_spec"] and "model" in r["down_spec"] and "model" in r["output_spec"]
    assert "model" not in r["norm_spec"]
    assert r["max_abs_logits"] < TOLERANCE, r["max_abs_logits"]
    assert r["max_abs_step_logits"] < TOLERANCE, r["max_abs_step_logits"]  # jitted prefill + decode
    assert r["generated_1"] == r["generated_4"]


def test_kv_cache_sharded_by_kv_heads_when_they_divide(sharded_run):
    assert "model" in sharded_run["tiny-gemma1-mha"]["cache_spec"]  # K = 4 heads over 4 devices
    assert "model" not in sharded_run["tiny-gemma1-mqa"]["cache_spec"]  # K = 1: replicated


def test_dtype_policy():
    assert EngineOptions().dtype == "auto"
    assert resolve_dtype("auto", "cpu", native_int8=False) == "float32"
    assert resolve_dtype("auto", "cpu", native_int8=True) == "int8"  # the AVX-512 VNNI kernel runs
    assert resolve_dtype("auto", "gpu") == "bfloat16"
    assert resolve_dtype("auto", "tpu") == "bfloat16"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"
    assert resolve_dtype("float32", "tpu") == "float32"
    with pytest.raises(SettingsError):
        EngineOptions(dtype="float16")
    with pytest.raises(SettingsError):
        EngineOptions(devices=0)
