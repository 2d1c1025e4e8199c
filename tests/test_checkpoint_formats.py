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

import dataclasses
import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
import torch  # the reference implementation (test extra: torch==2.13.0, transformers)
import transformers
from gguf_writer import BOS_ID, EOS_ID, PAD_ID, TINY_CONFIGS, TINY_IDS, UNK_ID, tiny_vocab, write_gguf

from jupyter_codegemma.backends.local import config as configs
from jupyter_codegemma.backends.local.checkpoints import WeightsCache, detect_format, directory_key, load_checkpoint
from jupyter_codegemma.backends.local.checkpoints.safetensors import SafetensorsFile
from jupyter_codegemma.backends.local.config import GemmaConfig
from jupyter_codegemma.backends.errors import CheckpointError
from jupyter_codegemma.backends.local.model import Transformer, init_params
from jupyter_codegemma.backends.local.sampler import Sampler
from jupyter_codegemma.backends.local.tokenizer import Tokenizer


CONFIGS, IDS = TINY_CONFIGS, TINY_IDS
ATOL_HF = 1e-4
ATOL_LAYOUTS = 1e-5
PADDED_VOCAB = 640  # Kaggle's Gemma 1 embedding is padded (256 000 -> 256 128); so is this one
# What a Kaggle tree cannot say (it has no config): the tiny configs' windows.
ORBAX_OVERRIDES = {"gemma2": {"sliding_window": 8}, "gemma3": {"sliding_window": 8}}


# ------------------------------------------------------------------------------- writers


def tokenizer_bytes() -> bytes:
    tokens, scores, types = tiny_vocab(512)
    return Tokenizer.from_gguf_vocab(tokens, scores, types, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=UNK_ID,
                                     pad_id=PAD_ID).serialized()


def hf_config(c: GemmaConfig):
    common = dict(vocab_size=c.vocab_size, hidden_size=c.embed_dim, intermediate_size=c.hidden_dim,
                  num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads,
                  num_key_value_heads=c.num_kv_heads, head_dim=c.head_dim, rms_norm_eps=c.norm_eps,
                  max_position_embeddings=c.max_context, hidden_activation="gelu_pytorch_tanh",
                  pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID)
    layer_types = ["sliding_attention" if k.value == "local" else "full_attention" for k in c.attention_kinds]
    scalar = round(c.query_scale**-2)
    if c.architecture == "gemma":
        return transformers.GemmaConfig(**common, rope_theta=c.rope_base_global)
    if c.architecture == "gemma2":
        return transformers.Gemma2Config(**common, rope_theta=c.rope_base_global, query_pre_attn_scalar=scalar,
                                         sliding_window=c.sliding_window, layer_types=layer_types,
                                         attn_logit_softcapping=c.attn_logit_softcap,
                                         final_logit_softcapping=c.final_logit_softcap)
    return transformers.Gemma3TextConfig(**common, rope_theta=c.rope_base_global,
                                         rope_local_base_freq=c.rope_base_local, query_pre_attn_scalar=scalar,
                                         sliding_window=c.sliding_window, layer_types=layer_types)


def hf_state_dict(c: GemmaConfig, params) -> dict[str, np.ndarray]:
    """The runtime tree -> transformers' names (norms are the scale itself: no +1)."""
    q_rows, kv_rows = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
    out = {"model.embed_tokens.weight": params["embedder"]["input_embedding"],
           "model.norm.weight": params["final_norm"]["scale"]}
    for i in range(c.num_layers):
        layer, pre = params[f"layer_{i}"], f"model.layers.{i}."
        qkv = layer["attn"]["qkv"]["w"]
        out[pre + "self_attn.q_proj.weight"] = qkv[:q_rows]
        out[pre + "self_attn.k_proj.weight"] = qkv[q_rows:q_rows + kv_rows]
        out[pre + "self_attn.v_proj.weight"] = qkv[q_rows + kv_rows:]
        out[pre + "self_attn.o_proj.weight"] = layer["attn"]["output"]["w"]
        gate_up = layer["mlp"]["gate_up"]["w"]
        out[pre + "mlp.gate_proj.weight"] = gate_up[:c.hidden_dim]
        out[pre + "mlp.up_proj.weight"] = gate_up[c.hidden_dim:]
        out[pre + "mlp.down_proj.weight"] = layer["mlp"]["down"]["w"]
        out[pre + "input_layernorm.weight"] = layer["pre_attention_norm"]["scale"]
        if c.architecture == "gemma":  # Gemma 1: "post_attention_layernorm" is the pre-FFW norm
            out[pre + "post_attention_layernorm.weight"] = layer["pre_ffw_norm"]["scale"]
        else:
            out[pre + "pre_feedforward_layernorm.weight"] = layer["pre_ffw_norm"]["scale"]
            out[pre + "post_attention_layernorm.weight"] = layer["post_attention_norm"]["scale"]
            out[pre + "post_feedforward_layernorm.weight"] = layer["post_ffw_norm"]["scale"]
        if c.use_qk_norm:
            out[pre + "self_attn.q_norm.weight"] = layer["attn"]["query_norm"]["scale"]
            out[pre + "self_attn.k_norm.weight"] = layer["attn"]["key_norm"]["scale"]
    return out


def build_hf_model(c: GemmaConfig, params):
    classes = {"gemma": transformers.GemmaForCausalLM, "gemma2": transformers.Gemma2ForCausalLM,
               "gemma3": transformers.Gemma3ForCausalLM}
    hf_cfg = hf_config(c)
    hf_cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = classes[c.architecture](hf_cfg).float().eval()
    state = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in hf_state_dict(c, params).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert set(missing) <= {"lm_head.weight"}, missing
    model.tie_weights()
    return model


def write_hf(directory: Path, model, **save_kwargs) -> Path:
    model.save_pretrained(directory, **save_kwargs)
    (directory / "tokenizer.model").write_bytes(tokenizer_bytes())
    return directory


def kaggle_tree(c: GemmaConfig, params) -> dict:
    """The runtime tree -> the gemma library's semi-flat tree, as Kaggle's Flax checkpoints hold it."""
    d, n, k, h, f = c.embed_dim, c.num_heads, c.num_kv_heads, c.head_dim, c.hidden_dim
    embedding = np.asarray(params["embedder"]["input_embedding"], np.float32)
    if c.architecture == "gemma":
        embedding = np.concatenate([embedding, np.zeros((PADDED_VOCAB - c.vocab_size, d), np.float32)])
    tree = {"transformer/embedder": {"input_embedding": embedding},
            "transformer/final_norm": {"scale": np.asarray(params["final_norm"]["scale"])}}

    def heads(rows: np.ndarray, count: int) -> np.ndarray:  # [count*H, D] -> [count, D, H]
        return rows.reshape(count, h, d).transpose(0, 2, 1)

    for i in range(c.num_layers):
        layer, pre = jax.tree.map(np.asarray, params[f"layer_{i}"]), f"transformer/layer_{i}/"
        qkv = layer["attn"]["qkv"]["w"]
        q, kk, v = qkv[:n * h], qkv[n * h:(n + k) * h], qkv[(n + k) * h:]
        if n == k:
            tree[pre + "attn/qkv_einsum"] = {"w": np.stack([heads(q, n), heads(kk, k), heads(v, k)])}
        else:
            tree[pre + "attn/q_einsum"] = {"w": heads(q, n)}
            tree[pre + "attn/kv_einsum"] = {"w": np.stack([heads(kk, k), heads(v, k)])}
        tree[pre + "attn/attn_vec_einsum"] = {"w": layer["attn"]["output"]["w"].T.reshape(n, h, d)}
        gate_up = layer["mlp"]["gate_up"]["w"].reshape(2, f, d)  # [2, F, D]
        # Gemma 1 checkpoints store [2, D, F]; Gemma 2 9B/27B and Gemma 3 the transposed [2, F, D].
        tree[pre + "mlp/gating_einsum"] = {"w": gate_up.transpose(0, 2, 1) if c.architecture == "gemma" else gate_up}
        tree[pre + "mlp/linear"] = {"w": layer["mlp"]["down"]["w"].T.copy()}
        for name in ("pre_attention_norm", "pre_ffw_norm", "post_attention_norm", "post_ffw_norm"):
            if name in layer:
                tree[pre + name] = {"scale": layer[name]["scale"]}
        if c.use_qk_norm:
            tree[pre + "attn/_query_norm"] = {"scale": layer["attn"]["query_norm"]["scale"]}
            tree[pre + "attn/_key_norm"] = {"scale": layer["attn"]["key_norm"]["scale"]}
    return tree


def write_kaggle(variant_dir: Path, c: GemmaConfig, params) -> Path:
    import orbax.checkpoint as ocp

    variant_dir.mkdir(parents=True)
    ocp.PyTreeCheckpointer().save((variant_dir / variant_dir.name).resolve(), kaggle_tree(c, params))
    (variant_dir / "tokenizer.model").write_bytes(tokenizer_bytes())
    return variant_dir


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


STRUCTURAL = [f.name for f in dataclasses.fields(GemmaConfig) if f.name not in ("name", "max_context", "vocab_size")]


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
