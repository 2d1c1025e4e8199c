"""The three checkpoint layouts of the same tiny random weights, against Hugging Face transformers.

For each tiny config (Gemma 1 MQA, Gemma 1 MHA, Gemma 2, Gemma 3) the runtime's random
parameters are written
  (a) as a Hugging Face directory: copied into a `transformers` model and `save_pretrained`,
  (b) as a Kaggle Flax directory: the gemma library's semi-flat orbax tree
      (`transformer/layer_0/attn/q_einsum` -> {"w": [N, D, H]}, ...) next to `tokenizer.model`,
  (c) as GGUF with llama.cpp's names and +1 norms (`gguf_writer.write_gguf`),
loaded back through `load_checkpoint` (format detected), and run through the runtime.

Stated tolerance: our float32 logits equal transformers' float32 eager logits (torch CPU) to
within ATOL = 1e-4 absolute, and the three layouts give logits equal to within 1e-5.
"""


from __future__ import annotations

import json

import jax
import numpy as np
import pytest
import torch
from checkpoint_writers import (ATOL_HF, ATOL_LAYOUTS, CONFIGS, IDS, ORBAX_OVERRIDES, PADDED_VOCAB, STRUCTURAL,
                                build_hf_model, write_hf, write_kaggle)
from gguf_writer import tiny_vocab, write_gguf

from jupyter_codegemma.backends.local import config as configs
from jupyter_codegemma.backends.local.checkpoints import WeightsCache, detect_format, directory_key, load_checkpoint
from jupyter_codegemma.backends.local.checkpoints.safetensors import SafetensorsFile
from jupyter_codegemma.backends.local.config import GemmaConfig
from jupyter_codegemma.backends.local.model import Transformer, init_params
from jupyter_codegemma.backends.local.sampler import Sampler


# ------------------------------------------------------------------------------------ fixtures


def our_logits(checkpoint, like: GemmaConfig) -> np.ndarray:
    params = jax.tree.map(lambda a: np.asarray(a, np.float32), checkpoint.params)
    # Same name as the original, so equal configs share compiled programs.
    config = checkpoint.config.replace(name=like.name, max_context=like.max_context)
    return Sampler(Transformer(config), params, 16).forward_logits(IDS)


@pytest.fixture(scope="module", params=list(CONFIGS))
def case(request, tmp_path_factory):
    key = request.param
    config = CONFIGS[key]()
    params = jax.tree.map(np.asarray, init_params(config, seed=7))
    root = tmp_path_factory.mktemp(key)
    model = build_hf_model(config, params)
    with torch.no_grad():
        hf_logits = model(torch.tensor([IDS])).logits[0].float().numpy()
    # One layout written sharded, to read a model.safetensors.index.json.
    shard = {"max_shard_size": "100KB"} if key == "gemma1-mha" else {}
    hf_dir = write_hf(root / "hf", model, **shard)
    kaggle_dir = write_kaggle(root / f"{key}-flax", config, params)
    gguf_path = write_gguf(root / "model.gguf", config, params, vocab=tiny_vocab(config.vocab_size))
    cache = WeightsCache(root / "cache")
    loaded = {
        "safetensors": load_checkpoint(hf_dir, cache=cache),
        "orbax": load_checkpoint(kaggle_dir, cache=cache, overrides=ORBAX_OVERRIDES.get(key)),
        "gguf": load_checkpoint(gguf_path, cache=cache),
    }
    logits = {fmt: our_logits(ckpt, config)[:, :config.vocab_size] for fmt, ckpt in loaded.items()}
    return dict(key=key, config=config, params=params, hf_logits=hf_logits, hf_dir=hf_dir, kaggle_dir=kaggle_dir,
                gguf=gguf_path, loaded=loaded, logits=logits, cache=cache, root=root)




# --------------------------------------------------------------------------------------- tests


def test_formats_detected(case):
    assert detect_format(case["hf_dir"]) == "safetensors"
    assert detect_format(case["kaggle_dir"]) == "orbax"
    assert detect_format(case["kaggle_dir"] / case["kaggle_dir"].name) == "orbax"  # the orbax dir itself
    assert detect_format(case["gguf"]) == "gguf"
    for fmt, ckpt in case["loaded"].items():
        assert ckpt.format == fmt
    if case["key"] == "gemma1-mha":  # the one layout written in shards
        index = json.loads((case["hf_dir"] / "model.safetensors.index.json").read_text())
        assert len(set(index["weight_map"].values())) > 1


def test_configs_read_back(case):
    c = case["config"]
    for fmt, ckpt in case["loaded"].items():
        for field in STRUCTURAL:
            got, want = getattr(ckpt.config, field), getattr(c, field)
            if isinstance(want, float):
                assert got == pytest.approx(want, rel=1e-6), (fmt, field)
            else:
                assert got == want, (fmt, field)
    assert case["loaded"]["safetensors"].config.vocab_size == c.vocab_size
    # Kaggle Gemma 1: the padded embedding is kept whole.
    padded = PADDED_VOCAB if c.architecture == "gemma" else c.vocab_size
    assert case["loaded"]["orbax"].config.vocab_size == padded
    assert case["loaded"]["orbax"].params["embedder"]["input_embedding"].shape == (padded, c.embed_dim)


def test_params_equal_across_layouts(case):
    want = jax.tree_util.tree_flatten_with_path(case["params"])[0]
    for fmt, ckpt in case["loaded"].items():
        got = dict(jax.tree_util.tree_flatten_with_path(ckpt.params)[0])
        assert len(got) == len(want), fmt
        for path, value in want:
            array = np.asarray(got[path])[: value.shape[0]]
            np.testing.assert_allclose(array, value, rtol=0, atol=1e-6, err_msg=f"{fmt} {path}")


def test_logits_match_transformers(case):
    for fmt, logits in case["logits"].items():
        diff = float(np.abs(logits - case["hf_logits"]).max())
        assert diff < ATOL_HF, (case["key"], fmt, diff)


def test_layouts_give_the_same_logits(case):
    base = case["logits"]["gguf"]
    for fmt in ("safetensors", "orbax"):
        assert float(np.abs(case["logits"][fmt] - base).max()) < ATOL_LAYOUTS, fmt


def test_second_load_comes_from_the_cache(case):
    for path, fmt in ((case["hf_dir"], "safetensors"), (case["kaggle_dir"], "orbax")):
        overrides = ORBAX_OVERRIDES.get(case["key"]) if fmt == "orbax" else None
        digest = directory_key(path, fmt, overrides)
        assert case["cache"].has(digest)
        again = load_checkpoint(path, cache=case["cache"], overrides=overrides)
        assert again.format == fmt and again.config == case["loaded"][fmt].config


# ------------------------------------------------------------------------------ details, errors


def test_kaggle_defaults_without_overrides(tmp_path):
    """Without overrides, what shapes cannot say comes from the published configs."""
    c = configs.tiny_gemma3()
    params = jax.tree.map(np.asarray, init_params(c, seed=1))
    ckpt = load_checkpoint(write_kaggle(tmp_path / "g3", c, params), cache=WeightsCache(tmp_path / "cache"))
    assert ckpt.config.architecture == "gemma3" and ckpt.config.sliding_window == 512
    assert ckpt.config.rope_base_global == 1_000_000.0 and ckpt.config.num_kv_heads == 1


def test_bfloat16_safetensors_read_as_float32(tmp_path):
    from safetensors.torch import save_file

    tensor = torch.randn(3, 5).to(torch.bfloat16)
    save_file({"w": tensor, "h": tensor.to(torch.float16)}, str(tmp_path / "x.safetensors"))
    f = SafetensorsFile(tmp_path / "x.safetensors")
    np.testing.assert_array_equal(f.get("w"), tensor.float().numpy())
    np.testing.assert_array_equal(f.get("h"), tensor.to(torch.float16).float().numpy())
    assert f.get("w").dtype == np.float32
