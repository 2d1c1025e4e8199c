"""Checkpoints that cannot be loaded say why in one CheckpointError naming the file; configs as the
Hub writes them load; the engine loads a checkpoint directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from checkpoint_writers import STRUCTURAL, build_hf_model, write_hf, write_kaggle
from gguf_writer import BOS_ID

from jupyter_codegemma.backends.errors import CheckpointError
from jupyter_codegemma.backends.local import config as configs
from jupyter_codegemma.backends.local.checkpoints import WeightsCache, detect_format, load_checkpoint
from jupyter_codegemma.backends.local.model import init_params


def assert_error(excinfo, path, *phrases):
    err = excinfo.value
    assert type(err) is CheckpointError
    assert err.path == str(path), (err.path, str(path))
    for phrase in phrases:
        assert phrase in str(err), (phrase, str(err))


@pytest.fixture(scope="module")
def hf_mqa(tmp_path_factory):
    c = configs.tiny_gemma1_mqa()
    params = jax.tree.map(np.asarray, init_params(c, seed=2))
    return write_hf(tmp_path_factory.mktemp("hf-mqa") / "hf", build_hf_model(c, params))


def copy_of(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_error_directory_of_no_format(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path, cache=WeightsCache(tmp_path / "c"))
    assert_error(e, tmp_path, "Hugging Face", "orbax", "config.json")


def test_error_config_json_without_safetensors(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError) as e:
        detect_format(tmp_path)
    assert_error(e, tmp_path, "safetensors")


def test_error_shapes_disagree_with_config(hf_mqa, tmp_path):
    d = copy_of(hf_mqa, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["intermediate_size"] = 96
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(d, cache=WeightsCache(tmp_path / "c"))
    assert_error(e, d / "model.safetensors", "gate_proj", "[128, 64]", "[96, 64]", "disagree")


def test_error_missing_tokenizer_hf(hf_mqa, tmp_path):
    d = copy_of(hf_mqa, tmp_path)
    (d / "tokenizer.model").unlink()
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(d, cache=WeightsCache(tmp_path / "c"))
    assert_error(e, d / "tokenizer.model", "tokenizer.model", "missing")


def test_error_missing_tokenizer_kaggle(tmp_path):
    c = configs.tiny_gemma1_mqa()
    d = write_kaggle(tmp_path / "k", c, jax.tree.map(np.asarray, init_params(c)))
    (d / "tokenizer.model").unlink()
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(d, cache=WeightsCache(tmp_path / "c"))
    assert_error(e, d / "k" / "tokenizer.model", "tokenizer.model", "missing")


def test_error_unknown_model_type(hf_mqa, tmp_path):
    d = copy_of(hf_mqa, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_type"] = "llama"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(d, cache=WeightsCache(tmp_path / "c"))
    assert_error(e, d / "config.json", "unknown model_type 'llama'")


def test_hub_style_configs(tmp_path):
    """Configs as the Hub has them (older transformers): rope_theta / rope_local_base_freq /
    rope_scaling / sliding_window_pattern instead of rope_parameters and layer_types, and a
    multimodal Gemma 3 config whose text model sits under text_config."""
    from jupyter_codegemma.backends.local.checkpoints.safetensors import read_hf_config
    from jupyter_codegemma.backends.local.config import AttentionKind

    codegemma_2b = {"model_type": "gemma", "vocab_size": 256000, "hidden_size": 2048, "intermediate_size": 16384,
                    "num_hidden_layers": 18, "num_attention_heads": 8, "num_key_value_heads": 1, "head_dim": 256,
                    "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 8192,
                    "hidden_act": "gelu", "hidden_activation": None}
    (tmp_path / "config.json").write_text(json.dumps(codegemma_2b))
    got = read_hf_config(tmp_path / "config.json")
    want = configs.codegemma_2b()
    for field in STRUCTURAL + ["vocab_size", "max_context"]:
        assert getattr(got, field) == getattr(want, field), field

    gemma3_4b = {"model_type": "gemma3", "text_config": {
        "model_type": "gemma3_text", "vocab_size": 262208, "hidden_size": 2560, "intermediate_size": 10240,
        "num_hidden_layers": 34, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
        "query_pre_attn_scalar": 256, "sliding_window": 1024, "sliding_window_pattern": 6,
        "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
        "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "max_position_embeddings": 131072}}
    (tmp_path / "config.json").write_text(json.dumps(gemma3_4b))
    got = read_hf_config(tmp_path / "config.json")
    assert got.architecture == "gemma3" and got.use_qk_norm and got.sliding_window == 1024
    assert got.rope_base_global == 1e6 and got.rope_base_local == 1e4 and got.rope_scale_global == 8.0
    assert got.attention_kinds[5] == AttentionKind.GLOBAL and got.attention_kinds[4] == AttentionKind.LOCAL
    assert got.query_scale == pytest.approx(256**-0.5) and got.attn_logit_softcap is None


def test_engine_loads_a_directory(hf_mqa, tmp_path):
    from jupyter_codegemma.backends.local.engine import Engine, EngineOptions

    engine = Engine.load(hf_mqa, EngineOptions(cache_dir=str(tmp_path / "cache"), cache_len=64,
                                               compilation_cache=False))
    # auto on CPU: int8 where the native kernel runs (AVX-512 VNNI and g++), else float32.
    assert engine.info()["format"] == "safetensors" and engine.info()["dtype"] in ("int8", "float32")
    result = engine.generate([BOS_ID, 300, 17], max_new_tokens=3).wait()
    assert len(result.ids) >= 1
