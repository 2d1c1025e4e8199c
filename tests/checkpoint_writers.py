"""Tiny random Gemma checkpoints written in the Hugging Face (safetensors + config.json) and Kaggle
(Flax/orbax + tokenizer.model) layouts, and the same model as a `transformers` model: the reference
for the checkpoint tests (GGUF is written by gguf_writer.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np
import torch  # the reference implementation (test extra: torch==2.13.0, transformers)
import transformers
from gguf_writer import BOS_ID, EOS_ID, PAD_ID, TINY_CONFIGS, TINY_IDS, UNK_ID, tiny_vocab

from jupyter_codegemma.backends.local.checkpoints.gguf_vocab import tokenizer_from_gguf_vocab
from jupyter_codegemma.backends.local.config import GemmaConfig

CONFIGS, IDS = TINY_CONFIGS, TINY_IDS
ATOL_HF = 1e-4
ATOL_LAYOUTS = 1e-5
PADDED_VOCAB = 640  # Kaggle's Gemma 1 embedding is padded (256 000 -> 256 128); so is this one
# What a Kaggle tree cannot say (it has no config): the tiny configs' windows.
ORBAX_OVERRIDES = {"gemma2": {"sliding_window": 8}, "gemma3": {"sliding_window": 8}}


# ------------------------------------------------------------------------------- writers


def tokenizer_bytes() -> bytes:
    tokens, scores, types = tiny_vocab(512)
    return tokenizer_from_gguf_vocab(tokens, scores, types, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=UNK_ID,
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


# The config fields that shape the network (a name or a context length does not).
STRUCTURAL = [f.name for f in dataclasses.fields(GemmaConfig) if f.name not in ("name", "max_context", "vocab_size")]
